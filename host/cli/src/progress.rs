//! The terminal progress bar: the CLI's way of showing what the scanner reports through
//! [`bulkhead_scan::scan::Progress`].

use std::io::IsTerminal;
use std::sync::Arc;

use bulkhead_scan::scan::Progress;

#[derive(Debug)]
pub(crate) struct Bar(indicatif::ProgressBar);

impl Bar {
    /// A bar on stderr, or `None` when stderr is not a terminal (CI logs, pipes).
    pub(crate) fn on_terminal() -> Option<Arc<dyn Progress>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} pulling layers {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style);
        }
        Some(Arc::new(Bar(bar)))
    }
}

impl Progress for Bar {
    fn layer(&self, bytes: u64) {
        self.0.inc_length(bytes);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
