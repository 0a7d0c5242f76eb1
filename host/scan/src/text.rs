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

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_neutralised() {
        assert_eq!(super::sanitize("a\u{1b}[31mb\n"), "a\u{fffd}[31mb\u{fffd}");
    }
}
