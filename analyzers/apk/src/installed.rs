//! The apk "installed" database (`lib/apk/db/installed`): records separated by blank
//! lines, each line one `X:value` field keyed by a single character.
//!
//! The fields read here (apk-tools' `apk_db_index_read` and the package index format):
//! `P` name, `V` version, `A` arch, `o` origin (the source package), `L` licence,
//! `m` maintainer, `t` build time, `c` aports commit, `C` package checksum, `U` url,
//! `I` installed size, `p` provides, and the file list: `F:dir` sets the current directory,
//! each following `R:name` is a file in it. `M`, `a` and `Z` (ACLs, checksums) and every
//! other field are skipped.
//!
//! apk itself rejects a whole database on the first malformed line. A scanner is better
//! served by reporting what it can: a bad line or an incomplete record is a warning, and
//! only a file with no complete record and something wrong in it is an error.

/// One installed package, fields as the database spells them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub origin: Option<String>,
    pub license: Option<String>,
    pub maintainer: Option<String>,
    pub build_time: Option<String>,
    pub commit: Option<String>,
    pub checksum: Option<String>,
    pub url: Option<String>,
    pub installed_size: Option<String>,
    pub provides: Option<String>,
    /// `F` and `R` joined with `/`, relative to the root, in database order.
    pub files: Vec<String>,
    /// 1-based line where the record starts.
    pub line: u32,
}

/// A line or record that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: u32,
    pub message: String,
}

/// The packages of one database, in file order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub packages: Vec<Package>,
    pub warnings: Vec<Warning>,
}

/// Why a whole file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub line: u32,
    pub message: String,
}

/// Warnings kept per file. A 64 MiB file of garbage lines would otherwise produce tens of
/// millions of them; past this a single summary says how many were dropped.
pub const MAX_WARNINGS: usize = 200;
/// Longest owned-file path kept (Linux `PATH_MAX`). One `F:` line of many megabytes
/// followed by many `R:` lines would otherwise multiply into gigabytes of paths.
pub const MAX_PATH: usize = 4096;
/// Total bytes of owned-file paths kept per file, for the same reason: the joined paths
/// repeat the directory for every file, so they can outgrow the database itself. Real
/// databases stay far below (a full Alpine desktop has a few MiB of paths).
pub const MAX_FILE_BYTES: usize = 64 << 20;

#[derive(Default)]
struct Record {
    line: u32,
    fields: u32,
    pkg: Package,
    has_name: bool,
    has_version: bool,
    /// The current `F:` directory; `None` before the first one.
    dir: Option<String>,
}

struct Parser {
    out: Parsed,
    dropped_warnings: u64,
    /// First malformed line, returned as the error when nothing could be read.
    first_problem: Option<Error>,
    file_bytes: usize,
    files_truncated: bool,
}

impl Parser {
    fn warn(&mut self, line: u32, message: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(Error {
                line,
                message: message.clone(),
            });
        }
        if self.out.warnings.len() < MAX_WARNINGS {
            self.out.warnings.push(Warning { line, message });
        } else {
            self.dropped_warnings += 1;
        }
    }

    fn finish(&mut self, record: Record) {
        if record.fields == 0 {
            return;
        }
        match (record.has_name, record.has_version) {
            (true, true) => self.out.packages.push(record.pkg),
            (false, _) => self.warn(
                record.line,
                "record has no package name (P:); skipped".to_string(),
            ),
            (true, false) => self.warn(
                record.line,
                format!("package {:?} has no version (V:); skipped", record.pkg.name),
            ),
        }
    }

    fn add_file(&mut self, record: &mut Record, lineno: u32, name: &str) {
        let Some(dir) = &record.dir else {
            self.warn(
                lineno,
                format!("file {name:?} (R:) comes before any directory (F:)"),
            );
            return;
        };
        if name.is_empty() {
            self.warn(lineno, "empty file name (R:)".to_string());
            return;
        }
        let len = if dir.is_empty() {
            name.len()
        } else {
            dir.len() + 1 + name.len()
        };
        if len > MAX_PATH {
            self.warn(
                lineno,
                format!("file path of {len} bytes is longer than {MAX_PATH}"),
            );
            return;
        }
        if self.file_bytes + len > MAX_FILE_BYTES {
            if !self.files_truncated {
                self.files_truncated = true;
                self.warn(
                    lineno,
                    format!(
                        "owned-file paths exceed {MAX_FILE_BYTES} bytes; the rest are not listed"
                    ),
                );
            }
            return;
        }
        self.file_bytes += len;
        let path = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        record.pkg.files.push(path);
    }
}

/// Parse a whole database.
pub fn parse(text: &str) -> Result<Parsed, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        out: Parsed::default(),
        dropped_warnings: 0,
        first_problem: None,
        file_bytes: 0,
        files_truncated: false,
    };
    let mut record = Record::default();

    for (idx, line) in text.lines().enumerate() {
        let lineno = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        // `lines()` strips "\n" and "\r\n"; a lone "\r" before the end of the text remains.
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            p.finish(std::mem::take(&mut record));
            continue;
        }
        let bytes = line.as_bytes();
        // The key is one ASCII character, so byte offsets 1 and 2 are char boundaries.
        if bytes.len() < 2 || bytes[1] != b':' || !bytes[0].is_ascii_graphic() {
            p.warn(lineno, "line is not in 'X:value' form".to_string());
            continue;
        }
        let key = bytes[0];
        let value = &line[2..];

        if key == b'P' && record.has_name {
            // Two records run together (a lost blank line): keep both rather than let
            // the second overwrite the first.
            p.warn(
                lineno,
                "P: inside a record that already has one; starting a new record".into(),
            );
            p.finish(std::mem::take(&mut record));
        }
        if record.fields == 0 {
            record.line = lineno;
        }
        record.fields += 1;

        let text_value = || {
            let v = value.trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        match key {
            b'P' => {
                let v = value.trim();
                if !v.is_empty() {
                    record.pkg.name = v.to_string();
                    record.pkg.line = record.line;
                    record.has_name = true;
                }
            }
            b'V' => {
                let v = value.trim();
                if !v.is_empty() {
                    record.pkg.version = v.to_string();
                    record.has_version = true;
                }
            }
            b'A' => record.pkg.arch = text_value(),
            b'o' => record.pkg.origin = text_value(),
            b'L' => record.pkg.license = text_value(),
            b'm' => record.pkg.maintainer = text_value(),
            b't' => record.pkg.build_time = text_value(),
            b'c' => record.pkg.commit = text_value(),
            b'C' => record.pkg.checksum = text_value(),
            b'U' => record.pkg.url = text_value(),
            b'I' => record.pkg.installed_size = text_value(),
            b'p' => record.pkg.provides = text_value(),
            // Paths are stored without a leading "/"; strip stray ones so that files stay
            // relative to the root.
            b'F' => record.dir = Some(value.trim_matches('/').to_string()),
            b'R' => p.add_file(&mut record, lineno, value),
            _ => {}
        }
    }
    p.finish(record);

    // Something wrong and nothing usable: the file is not an apk database we can read.
    // One bad line in an otherwise good database stays a warning so it hides nothing else.
    if p.out.packages.is_empty()
        && let Some(e) = p.first_problem
    {
        return Err(e);
    }
    if p.dropped_warnings > 0 {
        p.out.warnings.push(Warning {
            line: 0,
            message: format!("{} more warnings not shown", p.dropped_warnings),
        });
    }
    Ok(p.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Parsed) -> Vec<(&str, &str)> {
        p.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect()
    }

    #[test]
    fn fields_and_files() {
        let db = "C:Q1abc=\nP:busybox\nV:1.36.1-r2\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\
                  t:1714981135\nc:deadbeef\nF:bin\nR:busybox\na:0:0:755\nZ:Q1x=\nR:sh\n\
                  F:etc/network\nR:if-up\nM:0:0:755\n\nP:musl\nV:1.2.5-r0\n";
        let p = parse(db).expect("parses");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(names(&p), [("busybox", "1.36.1-r2"), ("musl", "1.2.5-r0")]);
        let b = &p.packages[0];
        assert_eq!(b.arch.as_deref(), Some("x86_64"));
        assert_eq!(b.origin.as_deref(), Some("busybox"));
        assert_eq!(b.license.as_deref(), Some("GPL-2.0-only"));
        assert_eq!(b.build_time.as_deref(), Some("1714981135"));
        assert_eq!(b.commit.as_deref(), Some("deadbeef"));
        assert_eq!(b.checksum.as_deref(), Some("Q1abc="));
        assert_eq!(b.files, ["bin/busybox", "bin/sh", "etc/network/if-up"]);
        assert_eq!(b.line, 1);
        assert_eq!(p.packages[1].line, 18);
        assert!(p.packages[1].files.is_empty());
    }

    #[test]
    fn crlf_and_no_final_newline() {
        let p = parse("P:a\r\nV:1-r0\r\nF:usr/bin\r\nR:a\r\n\r\nP:b\r\nV:2-r0").expect("parses");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(names(&p), [("a", "1-r0"), ("b", "2-r0")]);
        assert_eq!(p.packages[0].files, ["usr/bin/a"]);
        // A lone CR at the very end, and several blank lines between records.
        let p = parse("P:a\nV:1-r0\r\n\n\n\nP:b\nV:2-r0\r").expect("parses");
        assert_eq!(names(&p), [("a", "1-r0"), ("b", "2-r0")]);
    }

    #[test]
    fn incomplete_records_are_warnings() {
        let p = parse("P:nov\nA:x86_64\n\nV:1-r0\n\nP:ok\nV:1-r0\n").expect("parses");
        assert_eq!(names(&p), [("ok", "1-r0")]);
        assert_eq!(p.warnings.len(), 2);
        assert_eq!(p.warnings[0].line, 1);
        assert!(p.warnings[0].message.contains("\"nov\""));
        assert_eq!(p.warnings[1].line, 4);
    }

    #[test]
    fn malformed_lines_warn_with_line() {
        let p = parse("garbage here\nP:a\nV:1-r0\nxx\n:\n").expect("parses");
        assert_eq!(names(&p), [("a", "1-r0")]);
        let lines: Vec<u32> = p.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [1, 4, 5]);
    }

    #[test]
    fn unparseable_is_an_error() {
        let e = parse("bogus db contents").expect_err("garbage");
        assert_eq!(e.line, 1);
        let e = parse("\n\nP:only-a-name\n").expect_err("no version");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn empty_database_is_empty() {
        for text in ["", "\n", "\n\r\n  \n", "\u{feff}"] {
            let p = parse(text).expect("parses");
            assert!(p.packages.is_empty() && p.warnings.is_empty());
        }
    }

    #[test]
    fn records_run_together_are_split() {
        let p = parse("P:a\nV:1-r0\nF:x\nR:1\nP:b\nV:2-r0\nR:2\n").expect("parses");
        assert_eq!(names(&p), [("a", "1-r0"), ("b", "2-r0")]);
        assert_eq!(p.packages[0].files, ["x/1"]);
        // The new record has no F: yet: the file is not attributed to the wrong directory.
        assert!(p.packages[1].files.is_empty());
        assert_eq!(p.warnings.len(), 2);
        assert_eq!(p.warnings[0].line, 5);
        assert_eq!(p.warnings[1].line, 7);
    }

    #[test]
    fn file_paths() {
        let p = parse("P:a\nV:1\nR:orphan\nF:\nR:at-root\nF:/usr/lib/\nR:x\nR:\n").expect("parses");
        assert_eq!(p.packages[0].files, ["at-root", "usr/lib/x"]);
        let lines: Vec<u32> = p.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [3, 8]);
    }

    #[test]
    fn warnings_are_capped() {
        let mut db = "x\n".repeat(MAX_WARNINGS * 3);
        db.push_str("P:a\nV:1\n");
        let p = parse(&db).expect("parses");
        assert_eq!(p.warnings.len(), MAX_WARNINGS + 1);
        let last = p.warnings.last().expect("summary");
        assert_eq!(last.line, 0);
        assert!(
            last.message
                .starts_with(&format!("{} more", MAX_WARNINGS * 2))
        );
    }

    #[test]
    fn huge_directory_does_not_multiply() {
        // A directory name far over PATH_MAX, then many files in it.
        let mut db = format!("P:a\nV:1\nF:{}\n", "d".repeat(1 << 20));
        db.push_str(&"R:f\n".repeat(10_000));
        let p = parse(&db).expect("parses");
        assert!(p.packages[0].files.is_empty());
        assert_eq!(p.warnings.len(), MAX_WARNINGS + 1);
    }

    #[test]
    fn total_file_bytes_are_capped() {
        let dir = "d".repeat(MAX_PATH - 10);
        let per = dir.len() + 1 + 8;
        let count = MAX_FILE_BYTES / per + 5;
        let mut db = format!("P:a\nV:1\nF:{dir}\n");
        for i in 0..count {
            db.push_str(&format!("R:{i:08}\n"));
        }
        let p = parse(&db).expect("parses");
        assert_eq!(p.packages[0].files.len(), MAX_FILE_BYTES / per);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].message.contains("exceed"));
    }

    #[test]
    fn non_ascii_key_does_not_panic() {
        let p = parse("é:x\n\u{1F600}\nP:a\nV:1\n").expect("parses");
        assert_eq!(p.warnings.len(), 2);
    }
}
