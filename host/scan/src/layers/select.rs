//! Which files the analyzers asked for, compiled once per scan.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use bulkhead_model::{FileRequest, PathPattern};

/// Every analyzer's requests, merged: a path is wanted if any request matches it, with
/// the largest `max-size` among the matching requests.
#[derive(Debug)]
pub struct Selector {
    exact: HashMap<String, u64>,
    prefix: Vec<(String, u64)>,
    suffix: Vec<(String, u64)>,
    globs: GlobSet,
    glob_sizes: Vec<u64>,
    /// Each glob's literal directory prefix (`var/lib/dpkg/info/` for
    /// `var/lib/dpkg/info/*.list`), for pruning a walk.
    glob_dirs: Vec<String>,
}

impl Selector {
    /// Compile requests. Invalid globs are reported with the pattern.
    pub fn new<'a>(requests: impl IntoIterator<Item = &'a FileRequest>) -> Result<Self, String> {
        let mut exact: HashMap<String, u64> = HashMap::new();
        let mut prefix = Vec::new();
        let mut suffix = Vec::new();
        let mut globs = GlobSetBuilder::new();
        let mut glob_sizes = Vec::new();
        let mut glob_dirs = Vec::new();
        for r in requests {
            match &r.pattern {
                PathPattern::Exact(p) => {
                    let p = p.trim_start_matches('/').to_string();
                    let e = exact.entry(p).or_insert(0);
                    *e = (*e).max(r.max_size);
                }
                PathPattern::Prefix(p) => {
                    let mut p = p.trim_start_matches('/').to_string();
                    if !p.ends_with('/') {
                        p.push('/');
                    }
                    prefix.push((p, r.max_size));
                }
                PathPattern::Suffix(s) => suffix.push((s.clone(), r.max_size)),
                PathPattern::Glob(g) => {
                    let glob = GlobBuilder::new(g.trim_start_matches('/'))
                        .literal_separator(true)
                        .backslash_escape(true)
                        .build()
                        .map_err(|e| format!("invalid glob {g:?}: {e}"))?;
                    globs.add(glob);
                    glob_sizes.push(r.max_size);
                    let g = g.trim_start_matches('/');
                    let literal = &g[..g.find(['*', '?', '[', '{', '\\']).unwrap_or(g.len())];
                    glob_dirs.push(literal[..literal.rfind('/').map_or(0, |i| i + 1)].to_string());
                }
            }
        }
        let globs = globs.build().map_err(|e| format!("invalid globs: {e}"))?;
        Ok(Selector {
            exact,
            prefix,
            suffix,
            globs,
            glob_sizes,
            glob_dirs,
        })
    }

    /// The largest size any request accepts for `path` (clean, relative), or `None` when
    /// no analyzer wants it.
    pub fn wants(&self, path: &str) -> Option<u64> {
        let mut best: Option<u64> = self.exact.get(path).copied();
        let mut take = |m: u64| best = Some(best.map_or(m, |b| b.max(m)));
        for (p, m) in &self.prefix {
            if path.starts_with(p.as_str()) {
                take(*m);
            }
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        for (s, m) in &self.suffix {
            if name.ends_with(s.as_str()) {
                take(*m);
            }
        }
        if !self.glob_sizes.is_empty() {
            for i in self.globs.matches(path) {
                if let Some(m) = self.glob_sizes.get(i) {
                    take(*m);
                }
            }
        }
        best
    }

    /// Whether any file below directory `dir` (clean, relative) could be wanted: lets a
    /// directory walk skip whole subtrees. Conservative: true when unsure.
    pub fn may_want_below(&self, dir: &str) -> bool {
        if !self.suffix.is_empty() {
            return true;
        }
        let d = format!("{dir}/");
        let under = |p: &str| p.starts_with(&d) || d.starts_with(p);
        self.exact.keys().any(|e| e.starts_with(&d))
            || self.prefix.iter().any(|(p, _)| under(p))
            || self.glob_dirs.iter().any(|g| under(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pattern: PathPattern, max_size: u64) -> FileRequest {
        FileRequest { pattern, max_size }
    }

    #[test]
    fn every_pattern_kind() {
        let reqs = [
            req(PathPattern::Exact("var/lib/dpkg/status".into()), 10),
            req(PathPattern::Prefix("var/lib/dpkg/status.d".into()), 20),
            req(PathPattern::Suffix(".list".into()), 30),
            req(PathPattern::Glob("var/lib/dpkg/info/*.md5sums".into()), 40),
        ];
        let s = Selector::new(&reqs).expect("valid");
        assert_eq!(s.wants("var/lib/dpkg/status"), Some(10));
        assert_eq!(s.wants("var/lib/dpkg/status.d/base"), Some(20));
        assert_eq!(s.wants("var/lib/dpkg/status.dx"), None);
        assert_eq!(s.wants("a/b/c.list"), Some(30));
        assert_eq!(s.wants("var/lib/dpkg/info/x.md5sums"), Some(40));
        assert_eq!(s.wants("var/lib/dpkg/info/sub/x.md5sums"), None);
        assert_eq!(s.wants("etc/passwd"), None);
        assert!(s.may_want_below("var"));
        assert!(s.may_want_below("var/lib/dpkg/info"));
    }

    #[test]
    fn subtrees_are_pruned() {
        let reqs = [
            req(PathPattern::Exact("var/lib/dpkg/status".into()), 10),
            req(PathPattern::Glob("var/lib/dpkg/info/*.list".into()), 10),
        ];
        let s = Selector::new(&reqs).expect("valid");
        assert!(s.may_want_below("var/lib"));
        assert!(!s.may_want_below("usr"));
        assert!(!s.may_want_below("var/lib/dpkg/status.d"));
        assert!(s.may_want_below("var/lib/dpkg/info"));
        assert!(!s.may_want_below("var/lib/apt"));
    }
}
