//! Words for enums ([`Named`]).

/// An enum whose values are a fixed set of words: what users type (command-line flags,
/// configuration) and what reports print. The command line builds its choices from
/// [`Named::ALL`], so the words are defined once, here, next to the type.
pub trait Named: Sized + Copy + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];
    /// The word for the value.
    fn name(self) -> &'static str;
    /// The value a word names (ASCII case-insensitive).
    fn from_name(word: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name().eq_ignore_ascii_case(word))
    }
}
