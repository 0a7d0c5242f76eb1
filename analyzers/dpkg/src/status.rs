//! The dpkg control-file format of `status` and `status.d/*`: stanzas of `Field: value`
//! lines separated by blank lines, with indented continuation lines.
//!
//! The rules follow dpkg's own reader (`lib/dpkg/parse.c`, `fields.c`, `parsehelp.c` of
//! dpkg 1.21), so that the packages reported are the ones `dpkg-query -W` lists, with the
//! same spelling: field names are case-insensitive, package names are lowercased, versions
//! are printed the way dpkg prints them (`0:1.2` is `1.2`), `${source:Package}` is the
//! `Source:` value up to its first space. Where dpkg would refuse the whole database (a
//! duplicate field, a bad version), this reader skips or repairs the one stanza and says so
//! in a warning, so that one damaged entry does not hide every other package.

use std::collections::HashMap;

/// Which database file is being parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `var/lib/dpkg/status`: a package is listed only if its `Status:` says its files
    /// are on disk.
    Status,
    /// A distroless `status.d/<pkg>` file: no `Status:` field, every stanza is installed.
    StatusD,
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// `${Package}`: lowercase, as dpkg stores it.
    pub name: String,
    /// `${Version}`, normalised as dpkg prints it.
    pub version: String,
    /// `${source:Package}`.
    pub source_name: Option<String>,
    /// `${source:Version}`; `None` only when `Source:` carries a version dpkg cannot parse.
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub multi_arch: Option<String>,
    /// 1-based line where the stanza starts.
    pub line: u32,
}

/// A stanza that was skipped or doubted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: u32,
    pub message: String,
}

/// The packages of one file, in file order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub packages: Vec<Package>,
    pub warnings: Vec<Warning>,
}

/// Why a file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is a control file of another tool (vcpkg writes a `status` of the same
    /// syntax), not a dpkg database.
    NotDpkg,
    /// The file is not in control-file syntax at all.
    Malformed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub line: u32,
    pub message: String,
}

/// At most this many warnings are kept per file: a hostile file of a million bad lines
/// must not turn into a million messages (memory, and the host's output limit). The rest
/// are counted in one last warning.
pub const MAX_WARNINGS: usize = 200;

/// `Status: want flag state` words, in dpkg's order (dpkg matches them by
/// case-insensitive prefix, in this order; see [`parse_word`]).
const WANTS: [&str; 5] = ["unknown", "install", "hold", "deinstall", "purge"];
const EFLAGS: [&str; 2] = ["ok", "reinstreq"];
const STATES: [&str; 8] = [
    "not-installed",
    "config-files",
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
    "installed",
];
/// The states whose files are (at least partly) on disk: indexes into [`STATES`] from
/// `half-installed` on. A package in `config-files` or `not-installed` has no code left
/// to be vulnerable.
const FIRST_ON_DISK: usize = 2;

/// Fields that only vcpkg writes into its look-alike `status` file.
const VCPKG_FIELDS: [&str; 3] = ["Abi", "Port-Version", "Feature"];

/// The fields this reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Package,
    Version,
    Architecture,
    Source,
    Status,
    MultiArch,
}

impl Field {
    const ALL: [(Field, &'static str); 6] = [
        (Field::Package, "Package"),
        (Field::Version, "Version"),
        (Field::Architecture, "Architecture"),
        (Field::Source, "Source"),
        (Field::Status, "Status"),
        (Field::MultiArch, "Multi-Arch"),
    ];

    /// dpkg compares field names case-insensitively.
    fn from_name(key: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(key))
            .map(|(f, _)| *f)
    }

    fn name(self) -> &'static str {
        Field::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |(_, n)| n)
    }
}

#[derive(Default)]
struct Stanza<'a> {
    line: u32,
    fields: u32,
    package: Option<&'a str>,
    version: Option<&'a str>,
    arch: Option<&'a str>,
    source: Option<&'a str>,
    status: Option<&'a str>,
    multi_arch: Option<&'a str>,
    /// The field of the previous line, to which continuation lines belong.
    last: Option<Field>,
    /// Why the stanza cannot be read the way dpkg would, with the line.
    invalid: Option<(u32, String)>,
}

impl<'a> Stanza<'a> {
    fn slot(&mut self, field: Field) -> &mut Option<&'a str> {
        match field {
            Field::Package => &mut self.package,
            Field::Version => &mut self.version,
            Field::Architecture => &mut self.arch,
            Field::Source => &mut self.source,
            Field::Status => &mut self.status,
            Field::MultiArch => &mut self.multi_arch,
        }
    }
}

/// Collects the packages and warnings of one file.
struct Reader {
    kind: Kind,
    /// Packages in file order; a slot is emptied when a later stanza replaces it.
    slots: Vec<Option<Package>>,
    /// `(name, arch)` → index in `slots`: dpkg keeps one entry per name and architecture,
    /// and a later stanza for the same pair replaces the earlier one.
    index: HashMap<(String, String), usize>,
    warnings: Vec<Warning>,
    suppressed: u64,
}

impl Reader {
    fn warn(&mut self, line: u32, message: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Warning { line, message });
        } else {
            self.suppressed += 1;
        }
    }

    fn finish(mut self) -> Parsed {
        if self.suppressed > 0 {
            // Past the cap: this one is always kept, so the reader knows some were dropped.
            let line = self.warnings.last().map_or(0, |w| w.line);
            self.warnings.push(Warning {
                line,
                message: format!("{} more warnings not shown", self.suppressed),
            });
        }
        Parsed {
            packages: self.slots.into_iter().flatten().collect(),
            warnings: self.warnings,
        }
    }
}

/// dpkg's `c_isspace`: the C locale's white space.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Parse a whole file.
pub fn parse(text: &str, kind: Kind) -> Result<Parsed, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader {
        kind,
        slots: Vec::new(),
        index: HashMap::new(),
        warnings: Vec::new(),
        suppressed: 0,
    };
    let mut stanza = Stanza::default();
    let mut malformed: Option<Error> = None;
    let mut bad_line = |reader: &mut Reader, line: u32, message: String| {
        reader.warn(line, message.clone());
        malformed.get_or_insert(Error {
            kind: ErrorKind::Malformed,
            line,
            message,
        });
    };

    for (idx, line) in text.lines().enumerate() {
        let lineno = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        // `lines()` strips "\n" and "\r\n"; a lone trailing "\r" can remain on old files.
        // dpkg itself cannot read CRLF files at all; accepting them loses nothing.
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            end_stanza(std::mem::take(&mut stanza), &mut reader);
            continue;
        }
        if line.starts_with(is_c_space) {
            // A continuation line. dpkg keeps a line of only white space inside the value
            // too (it does not end the stanza), so neither do we.
            if line.trim_matches(is_c_space).is_empty() {
                continue;
            }
            match stanza.last {
                // Package, Version or Status on several lines: dpkg joins the lines and
                // then refuses the value, so the stanza cannot be trusted.
                Some(field @ (Field::Package | Field::Version | Field::Status)) => {
                    stanza.invalid.get_or_insert((
                        lineno,
                        format!("field {} continues on line {lineno}", field.name()),
                    ));
                }
                // Source, Architecture, Multi-Arch: the first line is the useful part.
                Some(field) => {
                    reader.warn(
                        lineno,
                        format!(
                            "field {} continues here; only its first line is read",
                            field.name()
                        ),
                    );
                    stanza.last = None;
                }
                // Description, Conffiles, … (or nothing yet: the stanza began with an
                // indented line, which dpkg refuses; nothing we read is lost).
                None if stanza.fields > 0 => {}
                None => bad_line(
                    &mut reader,
                    lineno,
                    "indented line outside any field".into(),
                ),
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            bad_line(
                &mut reader,
                lineno,
                "line is not in 'Field: value' form".into(),
            );
            stanza.last = None;
            continue;
        };
        let key = key.trim_end_matches(is_c_space);
        if key.is_empty() || key.contains(is_c_space) || key.starts_with('-') {
            bad_line(&mut reader, lineno, format!("invalid field name {key:?}"));
            stanza.last = None;
            continue;
        }
        if VCPKG_FIELDS.contains(&key) || (key == "Type" && value.trim() == "Port") {
            return Err(Error {
                kind: ErrorKind::NotDpkg,
                line: lineno,
                message: format!("field {key:?} is vcpkg's, not dpkg's"),
            });
        }
        let field = Field::from_name(key);
        if field == Some(Field::Package) && stanza.package.is_some() {
            // Two stanzas without the blank line between them (a hand edit, a bad merge):
            // dpkg refuses the file; reading them as two stanzas keeps both packages.
            reader.warn(
                lineno,
                format!(
                    "second Package field in the stanza of line {}; read as a new stanza",
                    stanza.line
                ),
            );
            end_stanza(std::mem::take(&mut stanza), &mut reader);
        }
        if stanza.fields == 0 {
            stanza.line = lineno;
        }
        stanza.fields = stanza.fields.saturating_add(1);
        stanza.last = None;
        let Some(field) = field else { continue };
        // dpkg hands values to its field readers as C strings: a NUL ends the value.
        let value = value
            .split('\0')
            .next()
            .unwrap_or(value)
            .trim_matches(is_c_space);
        let slot = stanza.slot(field);
        if slot.is_some() {
            reader.warn(
                lineno,
                format!("duplicate field {}; the first value is kept", field.name()),
            );
            continue;
        }
        *slot = Some(value);
        stanza.last = Some(field);
    }
    end_stanza(stanza, &mut reader);

    // Garbage with nothing recognisable in it is an error; one bad line in an otherwise
    // good database is a warning, so it does not hide every other package.
    if let Some(e) = malformed
        && reader.slots.iter().all(Option::is_none)
    {
        return Err(e);
    }
    Ok(reader.finish())
}

/// Turn a complete stanza into a package, or a warning.
fn end_stanza(s: Stanza<'_>, r: &mut Reader) {
    if s.fields == 0 {
        return;
    }
    let Some(raw_name) = s.package.filter(|n| !n.is_empty()) else {
        r.warn(s.line, "stanza has no Package field".into());
        return;
    };
    if let Some((line, why)) = s.invalid {
        r.warn(line, format!("package {raw_name:?} skipped: {why}"));
        return;
    }
    if let Err(why) = check_name(raw_name) {
        r.warn(s.line, format!("invalid package name {raw_name:?}: {why}"));
        return;
    }
    // dpkg folds names to lowercase when it stores them.
    let name = raw_name.to_ascii_lowercase();
    let arch = s.arch.filter(|a| !a.is_empty());
    let key = (name.clone(), arch.unwrap_or_default().to_string());

    let on_disk = match (s.status, r.kind) {
        (None, Kind::Status) => {
            r.warn(
                s.line,
                format!("package {name:?} has no Status field; skipped"),
            );
            return;
        }
        // Some distroless generators do write Status:; honour it when present.
        (None, Kind::StatusD) => true,
        (Some(status), _) => match parse_status(status) {
            Ok(state) => state >= FIRST_ON_DISK,
            Err(why) => {
                r.warn(
                    s.line,
                    format!("package {name:?}: invalid Status {status:?}: {why}"),
                );
                return;
            }
        },
    };
    if !on_disk {
        // A later "not-installed" entry for the same name and architecture is the one
        // dpkg keeps.
        if let Some(i) = r.index.remove(&key) {
            r.slots[i] = None;
            r.warn(
                s.line,
                format!("package {name:?} is listed again here, not installed"),
            );
        }
        return;
    }
    let Some(raw_version) = s.version.filter(|v| !v.is_empty()) else {
        r.warn(
            s.line,
            format!("installed package {name:?} has no Version field; skipped"),
        );
        return;
    };
    let version = match parse_version(raw_version) {
        Ok(v) => v,
        Err(why) => {
            r.warn(
                s.line,
                format!("package {name:?}: invalid Version {raw_version:?}: {why}"),
            );
            return;
        }
    };
    let (source_name, source_version) = match s.source.filter(|v| !v.is_empty()) {
        // dpkg-query prints the binary's own name and version when there is no Source:.
        None => (name.clone(), Some(version.clone())),
        Some(src) => {
            // "Source: glibc (2.36-9+deb12u4)": the binary was built from another version.
            // The name is everything up to the first space, as dpkg-query takes it.
            let src_name = src.split(' ').next().unwrap_or(src).to_string();
            let src_version = match src.split_once('(') {
                None => Some(version.clone()),
                Some((_, rest)) => {
                    let inner = rest.split(')').next().unwrap_or(rest);
                    match parse_version(inner) {
                        Ok(v) => Some(v),
                        Err(why) => {
                            r.warn(
                                s.line,
                                format!(
                                    "package {name:?}: invalid Source version {inner:?}: {why}"
                                ),
                            );
                            None
                        }
                    }
                }
            };
            (src_name, src_version)
        }
    };
    let package = Package {
        name: name.clone(),
        version,
        source_name: Some(source_name),
        source_version,
        arch: arch.map(str::to_string),
        multi_arch: s.multi_arch.filter(|m| !m.is_empty()).map(str::to_string),
        line: s.line,
    };
    if let Some(&i) = r.index.get(&key) {
        let earlier = r.slots[i].as_ref().map_or(0, |p| p.line);
        r.slots[i] = None;
        r.warn(
            s.line,
            format!("package {name:?} is listed twice (lines {earlier} and {}); the later entry is kept", s.line),
        );
    }
    r.index.insert(key, r.slots.len());
    r.slots.push(Some(package));
}

/// dpkg's package-name rule: an ASCII letter or digit, then letters, digits and `-+._`.
fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err("must start with an alphanumeric character");
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || "-+._".contains(c)) {
        Ok(())
    } else {
        Err("only letters, digits and '-+._' are allowed")
    }
}

/// One word of `Status:`, matched the way dpkg does: the first name in `names` that is a
/// case-insensitive prefix of `s`, then white space. Returns its index and the rest.
fn parse_word<'a>(s: &'a str, names: &[&str], last: bool) -> Result<(usize, &'a str), String> {
    if s.is_empty() {
        return Err("a word is missing".into());
    }
    let Some(idx) = names.iter().position(|n| {
        s.as_bytes()
            .get(..n.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(n.as_bytes()))
    }) else {
        let word = s.split(is_c_space).next().unwrap_or(s);
        return Err(format!("unknown word {word:?}"));
    };
    // The matched prefix is ASCII, so its length is a char boundary.
    let rest = s
        .get(names[idx].len()..)
        .unwrap_or("")
        .trim_start_matches(is_c_space);
    if last && !rest.is_empty() {
        return Err("trailing junk".into());
    }
    Ok((idx, rest))
}

/// `Status: want flag state` → index of the state in [`STATES`].
fn parse_status(value: &str) -> Result<usize, String> {
    let (_, rest) = parse_word(value, &WANTS, false)?;
    let (_, rest) = parse_word(rest, &EFLAGS, false)?;
    let (state, _) = parse_word(rest, &STATES, true)?;
    Ok(state)
}

/// Check a version as dpkg's `parseversion` does and print it as dpkg-query does: the
/// epoch only when non-zero (or when the rest holds a colon), without leading zeros.
/// The checks dpkg only warns about on a status file (a version that does not start with
/// a digit, odd characters) are not errors here either.
pub fn parse_version(raw: &str) -> Result<String, String> {
    let blank = |c: char| c == ' ' || c == '\t';
    let s = raw.trim_matches(blank);
    if s.is_empty() {
        return Err("version string is empty".into());
    }
    if s.contains(blank) {
        return Err("version string has embedded spaces".into());
    }
    let (epoch, rest) = match s.split_once(':') {
        None => (0, s),
        Some((e, rest)) => {
            let epoch = parse_epoch(e)?;
            if rest.is_empty() {
                return Err("nothing after colon in version number".into());
            }
            (epoch, rest)
        }
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((_, "")) => return Err("revision number is empty".into()),
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err("version number is empty".into());
    }
    let mut out = String::with_capacity(s.len());
    if epoch != 0 || upstream.contains(':') || revision.contains(':') {
        out.push_str(&epoch.to_string());
        out.push(':');
    }
    out.push_str(upstream);
    if !revision.is_empty() {
        out.push('-');
        out.push_str(revision);
    }
    Ok(out)
}

/// The epoch as C's `strtol` reads it (optional sign, decimal digits), which must end
/// exactly at the colon and fit an `int`.
fn parse_epoch(e: &str) -> Result<u32, String> {
    let (negative, digits) = match e.as_bytes().first() {
        Some(b'-') => (true, &e[1..]),
        Some(b'+') => (false, &e[1..]),
        _ => (false, e),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return Err("epoch in version is empty".into());
    }
    if end != digits.len() {
        return Err("epoch in version is not number".into());
    }
    let zero = digits.bytes().all(|b| b == b'0');
    if negative && !zero {
        return Err("epoch in version is negative".into());
    }
    let significant = digits.trim_start_matches('0');
    match significant.parse::<u32>() {
        Ok(n) if i32::try_from(n).is_ok() => Ok(n),
        _ if significant.is_empty() => Ok(0),
        _ => Err("epoch in version is too big".into()),
    }
}

/// An `info/*.list` file: one absolute path per line. The `/.` entry for the root is
/// dropped; paths are returned without the leading `/`, like every path in the contract.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        // Only absolute paths are entries; "//x" is "x" too, never a path with a
        // leading '/'.
        .filter(|l| l.starts_with('/'))
        .map(|l| l.trim_start_matches('/'))
        .filter(|l| !l.is_empty() && *l != ".")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
        Multi-Arch: same\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\nDescription: x\n more\n\n\
        Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
        Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\nSource: zlib\n";

    #[test]
    fn installed_only_with_source_versions() {
        let p = parse(SAMPLE, Kind::Status).expect("parses");
        let names: Vec<_> = p.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libc6", "zlib1g"]);
        assert_eq!(p.packages[0].source_name.as_deref(), Some("glibc"));
        assert_eq!(p.packages[0].source_version.as_deref(), Some("2.36-9"));
        assert_eq!(p.packages[0].multi_arch.as_deref(), Some("same"));
        assert_eq!(p.packages[1].source_name.as_deref(), Some("zlib"));
        assert_eq!(p.packages[1].source_version.as_deref(), Some("1:1.2.13"));
        assert_eq!(p.packages[1].line, 14);
    }

    #[test]
    fn crlf_and_no_final_newline() {
        let crlf = SAMPLE.replace('\n', "\r\n");
        let a = parse(&crlf, Kind::Status).expect("parses");
        let b = parse(SAMPLE.trim_end(), Kind::Status).expect("parses");
        assert_eq!(
            a.packages,
            parse(SAMPLE, Kind::Status).expect("parses").packages
        );
        assert_eq!(b.packages.len(), 2);
    }

    #[test]
    fn status_d_needs_no_status() {
        let p = parse(
            "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
            Kind::StatusD,
        )
        .expect("parses");
        assert_eq!(p.packages.len(), 1);
        let p = parse("Package: base-files\nVersion: 12.4\n", Kind::Status).expect("parses");
        assert!(p.packages.is_empty());
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn vcpkg_is_not_dpkg() {
        let e = parse(
            "Package: zlib\nVersion: 1.2\nAbi: 00ff\nType: Port\n",
            Kind::Status,
        )
        .expect_err("vcpkg");
        assert_eq!(e.kind, ErrorKind::NotDpkg);
    }

    #[test]
    fn garbage_is_a_parse_error_with_its_line() {
        let e = parse("\n\nthis is not\na status file\n", Kind::Status).expect_err("garbage");
        assert_eq!((e.kind, e.line), (ErrorKind::Malformed, 3));
    }

    #[test]
    fn one_bad_line_is_a_warning() {
        let text = format!("{SAMPLE}\nbroken line\n");
        let p = parse(&text, Kind::Status).expect("parses");
        assert_eq!(p.packages.len(), 2);
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn list_files() {
        assert_eq!(
            parse_list("/.\n/usr\n/usr/bin/ls\r\n"),
            ["usr", "usr/bin/ls"]
        );
        assert_eq!(parse_list("//etc\n//\nrelative\n"), ["etc"]);
    }

    // The expectations below are dpkg's documented behaviour (deb-version(7),
    // deb822(5), dpkg-query(1)); `tests/accuracy.rs` checks the same cases against the
    // live dpkg-query.

    #[test]
    fn versions_print_as_dpkg_prints_them() {
        for (raw, shown) in [
            ("1.2-3", "1.2-3"),
            ("0:1.2-3", "1.2-3"),
            ("00:1.2", "1.2"),
            ("007:1.2", "7:1.2"),
            ("1:2.0", "1:2.0"),
            ("0:1:2-3", "0:1:2-3"),
            (" 1.0 ", "1.0"),
            ("1.0-2-3", "1.0-2-3"),
        ] {
            assert_eq!(parse_version(raw).as_deref(), Ok(shown), "{raw:?}");
        }
        for bad in [
            "",
            "1.0 2",
            ":1",
            "a:1",
            "1a:1",
            "-1:1",
            "1:",
            "1.0-",
            "-1",
            "99999999999:1",
        ] {
            assert!(parse_version(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn field_names_are_case_insensitive_and_names_lowercased() {
        let p = parse(
            "package: Foo\nSTATUS: Install OK Installed\nversion: 1\n",
            Kind::Status,
        )
        .expect("parses");
        assert_eq!(p.packages.len(), 1);
        assert_eq!(p.packages[0].name, "foo");
    }

    #[test]
    fn source_name_is_up_to_the_first_space() {
        let p = parse(
            "Package: a\nStatus: install ok installed\nVersion: 2\nSource: b(1)\n",
            Kind::Status,
        )
        .expect("parses");
        assert_eq!(p.packages[0].source_name.as_deref(), Some("b(1)"));
        assert_eq!(p.packages[0].source_version.as_deref(), Some("1"));
    }

    #[test]
    fn white_space_only_line_does_not_end_a_stanza() {
        let p = parse(
            "Package: a\n \t\nStatus: install ok installed\nVersion: 1\n",
            Kind::Status,
        )
        .expect("parses");
        assert_eq!(p.packages.len(), 1);
    }

    #[test]
    fn later_stanza_for_the_same_package_wins() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1\n\n\
                    Package: a\nStatus: purge ok not-installed\n";
        let p = parse(text, Kind::Status).expect("parses");
        assert!(p.packages.is_empty());
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn glued_stanzas_are_split() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1\n\
                    Package: b\nStatus: install ok installed\nVersion: 2\n";
        let p = parse(text, Kind::Status).expect("parses");
        let names: Vec<_> = p.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn warnings_are_capped() {
        let text = format!("{SAMPLE}\n{}", "x\n".repeat(10_000));
        let p = parse(&text, Kind::Status).expect("parses");
        assert_eq!(p.warnings.len(), MAX_WARNINGS + 1);
        assert!(p.warnings[MAX_WARNINGS].message.contains("9800 more"));
    }
}
