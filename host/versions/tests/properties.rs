//! Order laws every version type must obey, whatever the reference tool says: a sort or a
//! binary search over versions silently misbehaves without them. Checked on generated
//! versions from small alphabets (so that triples often share prefixes and tie) mixed with
//! real versions from testdata/.

mod common;

use std::cmp::Ordering;
use std::fmt::Display;
use std::str::FromStr;

use bulkhead_versions::{Ecosystem, compare};
use proptest::prelude::*;
use proptest::sample::select;

/// Generated versions matching `regex` that parse, or real ones from `list`.
fn versions<T: FromStr>(regex: &'static str, list: &str) -> BoxedStrategy<String> {
    let real = common::lines(list);
    prop_oneof![
        3 => proptest::string::string_regex(regex).expect("valid regex"),
        1 => select(real),
    ]
    .prop_filter("must parse", |s| s.parse::<T>().is_ok())
    .boxed()
}

fn parse<T: FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("strategy yields valid versions")
}

fn check_laws<T>(eco: Ecosystem, a: &str, b: &str, c: &str) -> Result<(), TestCaseError>
where
    T: FromStr + Ord + Display + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    let (x, y, z): (T, T, T) = (parse(a), parse(b), parse(c));
    // Reflexive, and consistent with Eq.
    prop_assert_eq!(x.cmp(&x), Ordering::Equal);
    prop_assert_eq!(x == y, x.cmp(&y) == Ordering::Equal);
    // Antisymmetric.
    prop_assert_eq!(x.cmp(&y), y.cmp(&x).reverse(), "{} vs {}", a, b);
    // Transitive, for <= and for ==.
    if x <= y && y <= z {
        prop_assert!(x <= z, "{} <= {} <= {} but not {} <= {}", a, b, c, a, c);
    }
    if x == y && y == z {
        prop_assert!(x == z);
    }
    if x >= y && y >= z {
        prop_assert!(x >= z, "{} >= {} >= {} but not {} >= {}", a, b, c, a, c);
    }
    // Display gives back the input, which parses to an equal version.
    prop_assert_eq!(x.to_string(), a);
    let again: T = parse(&x.to_string());
    prop_assert_eq!(again.cmp(&x), Ordering::Equal);
    // The top-level function is the same ordering.
    prop_assert_eq!(compare(eco, a, b).expect("both valid"), x.cmp(&y));
    Ok(())
}

macro_rules! laws {
    ($name:ident, $t:ty, $eco:expr, $regex:expr, $list:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            #[test]
            fn $name(
                a in versions::<$t>($regex, $list),
                b in versions::<$t>($regex, $list),
                c in versions::<$t>($regex, $list),
            ) {
                check_laws::<$t>($eco, &a, &b, &c)?;
            }
        }
    };
}

laws!(
    deb_order_laws,
    bulkhead_versions::deb::DebVersion,
    Ecosystem::Deb,
    "([0-2]:)?[0-2][0-2a~.+]{0,5}(-[0-2a~.+]{1,3})?",
    "deb.txt"
);

laws!(
    rpm_order_laws,
    bulkhead_versions::rpm::RpmVersion,
    Ecosystem::Rpm,
    "([0-2]:)?[0-2a~^._]{1,5}(-[0-2a~^._]{1,3})?",
    "rpm.txt"
);

laws!(
    apk_order_laws,
    bulkhead_versions::apk::ApkVersion,
    Ecosystem::Apk,
    "[0-2](\\.0?[0-2]){0,2}[ab]?(_(alpha|rc|p)[0-2]?){0,2}(~[0-9a-f]{1,2})?(-r[0-2])?",
    "apk.txt"
);

// apk-tools orders any string, invalid ones by a fallback, and so does ApkVersion: the
// laws must hold across valid, apk-tools-2-only, apk-tools-3-only and invalid versions.
laws!(
    apk_order_laws_any_string,
    bulkhead_versions::apk::ApkVersion,
    Ecosystem::Apk,
    "[0-2abpr._~-]{1,10}|[0-2](\\.0{0,2}[0-2]?){0,2}[ab]?[0-2]?(_(alpha|rc|p|x)[0-2]?){0,2}(~[0-9a-f]{1,2})?(-r[0-2]?){0,2}",
    "apk.txt"
);

laws!(
    semver_order_laws,
    bulkhead_versions::semver::SemVer,
    Ecosystem::Semver,
    "v?[0-1]\\.[0-1]\\.[0-2](-([0-2]|a|b|a1|0a)(\\.([0-2]|a|b)){0,2})?(\\+[a-z0-9]{1,3})?",
    "semver.txt"
);

laws!(
    go_order_laws,
    bulkhead_versions::semver::GoVersion,
    Ecosystem::Go,
    "v?[0-1](\\.[0-1](\\.[0-2](-([0-2]|a|b|0\\.2019[0-9]{10}-[0-9a-f]{12})(\\.[0-2]){0,1})?(\\+incompatible)?)?)?",
    "go.txt"
);

laws!(
    pep440_order_laws,
    bulkhead_versions::pep440::Pep440Version,
    Ecosystem::Pep440,
    "([0-1]!)?[0-2](\\.[0-2]){0,2}((a|b|rc)[0-1])?(\\.post[0-1])?(\\.dev[0-1])?(\\+[a-b0-2]{1,2}(\\.[0-2a]{1,2})?)?",
    "pep440.txt"
);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]
    /// Hostile input ends in an error or a valid version, never a panic, for every ecosystem.
    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,40}|[0-9.:~^+_a-z!-]{0,40}") {
        for eco in Ecosystem::ALL {
            let _ = eco.validate(&s);
            let _ = compare(eco, &s, "1.0.0");
        }
    }
}
