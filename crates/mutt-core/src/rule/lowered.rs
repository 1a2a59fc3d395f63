//! The regex rules rewritten for a lower-cased ASCII message.
//!
//! Rules match case-insensitively (the original's `re.IGNORECASE`). A case-insensitive set
//! cannot use a literal prefilter: `(?i)audit-` is 32 literals per pattern, and the set ends
//! up scanning every byte of every message with its lazy DFA (1.5 µs of a 550-byte message
//! with the bench's 30 regex rules, most of the alerter's matching time). The same patterns
//! rewritten to match the message lower-cased have lower-case literals only, which the
//! regex crate finds with its vectorised prefilter (0.2–0.4 µs).
//!
//! Why it gives the same answer: for an ASCII message `m`, lower-casing changes each ASCII
//! capital into its small letter and nothing else (same length, same positions). Every class
//! of a case-insensitive pattern holds both cases of each ASCII letter it holds, so a position
//! of `m` is in a class exactly when the same position of the lower-cased message is; a class
//! with letters may then drop the capitals (and everything outside ASCII), which the
//! lower-cased message never holds. Literals hold no ASCII letters (case-insensitive letters
//! are classes); word boundaries and anchors see the same word characters and line ends. A
//! pattern that turns case sensitivity back on (`(?-i)B`: a letter as a literal, or a class
//! with one case only) or matches bytes (`(?-u)`) is not rewritten, and then the set is not
//! used at all. Messages that are not ASCII always go through the case-insensitive set.
//!
//! Written here because no crate rewrites a pattern this way; regex-syntax parses it and prints
//! the result back as a pattern.

use super::{REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT};
use regex::{RegexSet, RegexSetBuilder};
use regex_syntax::hir::{Capture, Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Repetition};

/// The rewritten set for `patterns` (within the case-insensitive set's limits), or `None` when
/// a pattern cannot be rewritten or the set does not compile.
pub(super) fn lowered_set(patterns: &[String]) -> Option<RegexSet> {
    let mut parser = regex_syntax::ParserBuilder::new().case_insensitive(true).build();
    let rewritten: Option<Vec<String>> = patterns
        .iter()
        .map(|p| {
            let hir = parser.parse(p).ok()?;
            Some(lower(&hir)?.to_string())
        })
        .collect();
    RegexSetBuilder::new(rewritten?).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_DFA_SIZE_LIMIT).build().ok()
}

/// `hir` for a lower-cased ASCII haystack; `None` if it is not case-insensitive throughout.
fn lower(hir: &Hir) -> Option<Hir> {
    Some(match hir.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => {
            if lit.0.iter().any(u8::is_ascii_alphabetic) {
                return None;
            }
            hir.clone()
        }
        HirKind::Class(Class::Unicode(class)) => {
            if !case_closed(class) {
                return None;
            }
            // Classes without letters stay as they are: narrowing `\d` to `[0-9]` would let the
            // literal extractor expand `audit-\d` into ten literals per pattern, too many for
            // the fast prefilter (1.3 µs per message instead of 0.2).
            if !class.ranges().iter().any(|r| r.start() <= 'z' && r.end() >= 'a') {
                return Some(hir.clone());
            }
            let mut small = class.clone();
            small.intersect(&ClassUnicode::new([
                ClassUnicodeRange::new('\0', '@'),
                ClassUnicodeRange::new('[', '\x7f'),
            ]));
            // A class of one character becomes a literal, which the prefilter can use.
            Hir::class(Class::Unicode(small))
        }
        HirKind::Class(Class::Bytes(_)) => return None,
        HirKind::Look(look) => Hir::look(*look),
        HirKind::Repetition(rep) => Hir::repetition(Repetition { sub: Box::new(lower(&rep.sub)?), ..rep.clone() }),
        HirKind::Capture(cap) => Hir::capture(Capture { sub: Box::new(lower(&cap.sub)?), ..cap.clone() }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(lower).collect::<Option<Vec<_>>>()?),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(lower).collect::<Option<Vec<_>>>()?),
    })
}

/// Whether `class` holds both cases of every ASCII letter it holds.
fn case_closed(class: &ClassUnicode) -> bool {
    let holds = |c: u8| class.ranges().iter().any(|r| r.start() <= char::from(c) && char::from(c) <= r.end());
    (b'a'..=b'z').all(|c| holds(c) == holds(c.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> Option<RegexSet> {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        lowered_set(&p)
    }

    #[test]
    fn case_insensitive_patterns_are_rewritten_to_small_letters() {
        let s = set(&[r"audit-\d+", "LINK-(UP|DOWN)", r"[A-C]x\b", r"\w+@[^z]"]).unwrap();
        let hits = |m: &str| s.matches(&m.to_ascii_lowercase()).into_iter().collect::<Vec<_>>();
        assert_eq!(hits("AUDIT-12 Link-Down bX a@Z"), vec![0, 1, 2]);
        assert_eq!(hits("user@host"), vec![3]);
        assert_eq!(hits("nothing here"), Vec::<usize>::new());
    }

    #[test]
    fn patterns_that_turn_case_back_on_or_match_bytes_are_not_rewritten() {
        assert!(set(&["ab", "(?-i)B"]).is_none());
        assert!(set(&["(?-i:[A-Z])x"]).is_none());
        assert!(set(&[r"(?-u:\xff)"]).is_none());
        assert!(set(&["("]).is_none());
        assert!(set(&["ab", r"\d+-x"]).is_some());
    }
}
