//! Untrusted text on its way to a person: analyzers, advisories and registries name
//! packages, titles and references, and none of it may steer a terminal or a log.

/// Replace control characters (terminal escapes, newlines) in untrusted text.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// An error and its causes, as one line ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A reqwest error with its causes ("connection refused", "dns error: …"), without the
/// URL: callers name the URL themselves, and a URL may carry a token in its query.
pub fn http_error(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let mut text = error_chain(&e.without_url());
    if timeout {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_neutralised() {
        assert_eq!(super::sanitize("a\u{1b}[31mb\n"), "a\u{fffd}[31mb\u{fffd}");
    }
}
