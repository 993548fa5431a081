//! Topic names and permission patterns, each parsed and validated once.
//!
//! - [`Topic`]: a validated `namespace` or `namespace:resource` name, cheap to
//!   clone (`Arc<str>`); every `Topic` value in the hub is known to be valid.
//! - [`TopicPattern`]: one entry of a token's `subscribe`/`publish` claim or of
//!   an API key's `publish` list: an exact topic, `ns:*`, a bare `ns`, or `*`,
//!   with `{sub}` substituted safely (see [`TopicPattern::parse`]).
//!
//! Every [`TopicError`] maps to the wire code `invalid_topic`.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest topic, in bytes, that the contract allows.
pub const MAX_TOPIC_LEN: usize = 255;

/// The placeholder that [`TopicPattern::parse`] replaces by the token's `sub`.
pub const SUB_PLACEHOLDER: &str = "{sub}";

/// Why a string is not a valid topic. All variants are `invalid_topic` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("topic is empty")]
    Empty,
    /// The topic is longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic is {len} bytes long, the maximum is {MAX_TOPIC_LEN}")]
    TooLong {
        /// Length of the rejected topic in bytes.
        len: usize,
    },
    /// The topic starts with `:`, so its namespace is empty.
    #[error("topic has an empty namespace")]
    EmptyNamespace,
    /// A namespace byte outside `A-Z a-z 0-9 _ - .`.
    #[error("byte 0x{byte:02x} at position {pos} is not allowed in a namespace")]
    InvalidNamespaceByte {
        /// The offending byte.
        byte: u8,
        /// Its byte offset in the topic.
        pos: usize,
    },
    /// The topic ends with `:`, so its resource is empty.
    #[error("topic has an empty resource after `:`")]
    EmptyResource,
    /// A resource byte outside `A-Z a-z 0-9 _ - . : = @`.
    #[error("byte 0x{byte:02x} at position {pos} is not allowed in a resource")]
    InvalidResourceByte {
        /// The offending byte.
        byte: u8,
        /// Its byte offset in the topic.
        pos: usize,
    },
}

/// Whether `b` may appear in a namespace.
const fn is_namespace_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Whether `b` may appear in a resource.
const fn is_resource_byte(b: u8) -> bool {
    is_namespace_byte(b) || matches!(b, b':' | b'=' | b'@')
}

/// Checks a namespace whose first byte sits at `offset` in the whole string.
fn check_namespace(ns: &str, offset: usize) -> Result<(), TopicError> {
    if ns.is_empty() {
        return Err(TopicError::EmptyNamespace);
    }
    match ns.bytes().position(|b| !is_namespace_byte(b)) {
        Some(i) => Err(TopicError::InvalidNamespaceByte {
            byte: ns.as_bytes()[i],
            pos: offset + i,
        }),
        None => Ok(()),
    }
}

/// Validates `s` against the topic grammar.
fn validate(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: s.len() });
    }
    let (ns, resource) = match s.split_once(':') {
        Some((ns, resource)) => (ns, Some(resource)),
        None => (s, None),
    };
    check_namespace(ns, 0)?;
    if let Some(resource) = resource {
        if resource.is_empty() {
            return Err(TopicError::EmptyResource);
        }
        let offset = ns.len() + 1;
        if let Some(i) = resource.bytes().position(|b| !is_resource_byte(b)) {
            return Err(TopicError::InvalidResourceByte {
                byte: resource.as_bytes()[i],
                pos: offset + i,
            });
        }
    }
    Ok(())
}

/// Checks that `ns` is a valid topic namespace (used for configured namespaces).
pub fn validate_namespace(ns: &str) -> Result<(), TopicError> {
    if ns.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: ns.len() });
    }
    check_namespace(ns, 0)
}

/// A validated topic name: `namespace` or `namespace:resource`.
///
/// Cloning is a reference-count increment. Equality, ordering and hashing are
/// those of the string, and `Topic: Borrow<str>`, so maps keyed by `Topic` can
/// be queried with a `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    /// The whole topic, e.g. `bookings:42`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `:` (the whole topic when there is none).
    pub fn namespace(&self) -> &str {
        match self.0.split_once(':') {
            Some((ns, _)) => ns,
            None => &self.0,
        }
    }

    /// The part after the first `:`, or `None` for a bare namespace topic.
    pub fn resource(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, resource)| resource)
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate(s)?;
        Ok(Self(Arc::from(s)))
    }
}

impl TryFrom<String> for Topic {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate(&s)?;
        Ok(Self(Arc::from(s)))
    }
}

impl TryFrom<&str> for Topic {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({:?})", &*self.0)
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopicVisitor;

        impl Visitor<'_> for TopicVisitor {
            type Value = Topic;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic string such as `bookings:42`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Topic, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Topic, E> {
                Topic::try_from(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(TopicVisitor)
    }
}

/// Why a permission pattern is invalid. A token carrying one is unauthorized;
/// a configured one is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is the empty string.
    #[error("pattern is empty")]
    Empty,
    /// The pattern can never match because it is longer than a topic may be.
    #[error("pattern is {len} bytes long, the maximum is {MAX_TOPIC_LEN}")]
    TooLong {
        /// Length of the pattern in bytes.
        len: usize,
    },
    /// The pattern starts with `:`.
    #[error("pattern has an empty namespace")]
    EmptyNamespace,
    /// The pattern ends with `:`.
    #[error("pattern has an empty resource after `:`")]
    EmptyResource,
    /// A byte that is not allowed at this place of a pattern.
    #[error("byte 0x{byte:02x} at position {pos} is not allowed in a pattern")]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its byte offset in the pattern.
        pos: usize,
    },
    /// `*` that is neither the whole pattern nor the whole resource (`ns:*`).
    #[error("`*` at position {pos} must be the whole pattern or the whole resource (`ns:*`)")]
    MisplacedWildcard {
        /// Byte offset of the `*`.
        pos: usize,
    },
    /// `{sub}` inside the namespace part; only the resource may hold it.
    #[error("`{{sub}}` at position {pos} is in the namespace; only the resource may use it")]
    SubInNamespace {
        /// Byte offset of the placeholder.
        pos: usize,
    },
    /// `{sub}` is used but there is no subject to substitute (e.g. an API key).
    #[error("`{{sub}}` is used but there is no subject to substitute")]
    SubUnavailable,
}

/// What a parsed pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    /// `*`: every topic.
    All,
    /// `ns`: only the bare topic `ns`.
    Bare(Box<str>),
    /// `ns:*`: every `ns:resource`, not the bare `ns`.
    AnyResource(Box<str>),
    /// `ns:resource`: exactly this topic.
    Exact(Topic),
    /// A `{sub}` substitution produced something that is not a valid topic
    /// (e.g. `sub = "*"`), so the pattern matches no topic at all.
    Nothing,
}

/// A parsed permission pattern: an exact topic, `ns:*`, a bare `ns`, or `*`.
///
/// Matching never allocates. `Display` shows the pattern after `{sub}`
/// substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    source: Box<str>,
    matcher: Matcher,
}

impl TopicPattern {
    /// Parses `pattern`, substituting `{sub}` in its resource part by `sub`.
    ///
    /// The wildcard structure is decided on the pattern as written, before
    /// substitution, and the substituted text is only ever compared literally:
    /// a `sub` of `*`, `a:*` or anything else can never widen the pattern. If
    /// the substituted result is not a valid topic (say `users:*`), the
    /// pattern matches nothing.
    ///
    /// Errors: `{sub}` with `sub = None`, `{sub}` in the namespace, `*` other
    /// than as `*` or `ns:*`, bytes outside the topic grammar, empty parts.
    pub fn parse(pattern: &str, sub: Option<&str>) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern == "*" {
            return Ok(Self::new(pattern, Matcher::All));
        }
        let (ns, resource) = match pattern.split_once(':') {
            Some((ns, resource)) => (ns, Some(resource)),
            None => (pattern, None),
        };
        check_pattern_namespace(ns)?;
        let Some(resource) = resource else {
            if pattern.len() > MAX_TOPIC_LEN {
                return Err(PatternError::TooLong { len: pattern.len() });
            }
            return Ok(Self::new(pattern, Matcher::Bare(ns.into())));
        };
        if resource == "*" {
            return Ok(Self::new(pattern, Matcher::AnyResource(ns.into())));
        }
        let has_placeholder = check_pattern_resource(resource, ns.len() + 1)?;
        if !has_placeholder {
            if pattern.len() > MAX_TOPIC_LEN {
                return Err(PatternError::TooLong { len: pattern.len() });
            }
            // Both parts were checked against the topic grammar above.
            debug_assert_eq!(validate(pattern), Ok(()));
            let topic = Topic(Arc::from(pattern));
            return Ok(Self::new(pattern, Matcher::Exact(topic)));
        }
        let Some(sub) = sub else {
            return Err(PatternError::SubUnavailable);
        };
        // Single pass over the pattern as written: text inserted from `sub` is
        // never scanned again, for placeholders or for wildcards.
        let substituted = format!("{ns}:{}", resource.replace(SUB_PLACEHOLDER, sub));
        let matcher = match substituted.parse::<Topic>() {
            Ok(topic) => Matcher::Exact(topic),
            Err(_) => Matcher::Nothing,
        };
        Ok(Self {
            source: substituted.into_boxed_str(),
            matcher,
        })
    }

    fn new(source: &str, matcher: Matcher) -> Self {
        Self {
            source: source.into(),
            matcher,
        }
    }

    /// Whether `topic` is covered by this pattern.
    pub fn matches(&self, topic: &Topic) -> bool {
        match &self.matcher {
            Matcher::All => true,
            Matcher::Bare(ns) => topic.as_str() == &**ns,
            Matcher::AnyResource(ns) => topic.resource().is_some() && topic.namespace() == &**ns,
            Matcher::Exact(exact) => exact == topic,
            Matcher::Nothing => false,
        }
    }

    /// The pattern text after `{sub}` substitution.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Checks the namespace part of a pattern as written.
fn check_pattern_namespace(ns: &str) -> Result<(), PatternError> {
    if ns.is_empty() {
        return Err(PatternError::EmptyNamespace);
    }
    if let Some(pos) = ns.find(SUB_PLACEHOLDER) {
        return Err(PatternError::SubInNamespace { pos });
    }
    match ns.bytes().position(|b| !is_namespace_byte(b)) {
        Some(pos) if ns.as_bytes()[pos] == b'*' => Err(PatternError::MisplacedWildcard { pos }),
        Some(pos) => Err(PatternError::InvalidByte {
            byte: ns.as_bytes()[pos],
            pos,
        }),
        None => Ok(()),
    }
}

/// Checks the resource part of a pattern as written (it starts at `offset`);
/// returns whether it holds a `{sub}` placeholder.
fn check_pattern_resource(resource: &str, offset: usize) -> Result<bool, PatternError> {
    if resource.is_empty() {
        return Err(PatternError::EmptyResource);
    }
    let bytes = resource.as_bytes();
    let mut has_placeholder = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(SUB_PLACEHOLDER.as_bytes()) {
            has_placeholder = true;
            i += SUB_PLACEHOLDER.len();
            continue;
        }
        let byte = bytes[i];
        if byte == b'*' {
            return Err(PatternError::MisplacedWildcard { pos: offset + i });
        }
        if !is_resource_byte(byte) {
            return Err(PatternError::InvalidByte {
                byte,
                pos: offset + i,
            });
        }
        i += 1;
    }
    Ok(has_placeholder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Topic {
        s.parse().unwrap()
    }

    fn pattern(p: &str, sub: Option<&str>) -> TopicPattern {
        TopicPattern::parse(p, sub).unwrap()
    }

    #[test]
    fn valid_topics_parse() {
        for s in [
            "bookings",
            "bookings:42",
            "guests:wedding-7",
            "food:menu",
            "cities",
            "a",
            "A.b_c-D:x:y:z",
            "users:alice@example.com",
            "q:k=v",
            "ns:::",
            "ns:.",
        ] {
            let t = topic(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn namespace_and_resource_split_at_first_colon() {
        let t = topic("bookings:42:rooms");
        assert_eq!(t.namespace(), "bookings");
        assert_eq!(t.resource(), Some("42:rooms"));
        let bare = topic("cities");
        assert_eq!(bare.namespace(), "cities");
        assert_eq!(bare.resource(), None);
    }

    #[test]
    fn invalid_topics_have_typed_errors() {
        assert_eq!("".parse::<Topic>(), Err(TopicError::Empty));
        assert_eq!(":x".parse::<Topic>(), Err(TopicError::EmptyNamespace));
        assert_eq!("ns:".parse::<Topic>(), Err(TopicError::EmptyResource));
        assert_eq!(
            "book ings".parse::<Topic>(),
            Err(TopicError::InvalidNamespaceByte { byte: b' ', pos: 4 })
        );
        assert_eq!(
            "bo=oks:1".parse::<Topic>(),
            Err(TopicError::InvalidNamespaceByte { byte: b'=', pos: 2 })
        );
        assert_eq!(
            "ns:a*".parse::<Topic>(),
            Err(TopicError::InvalidResourceByte { byte: b'*', pos: 4 })
        );
        assert_eq!(
            "ns:ü".parse::<Topic>(),
            Err(TopicError::InvalidResourceByte { byte: 0xc3, pos: 3 })
        );
        assert_eq!(
            "ns:a/b".parse::<Topic>(),
            Err(TopicError::InvalidResourceByte { byte: b'/', pos: 4 })
        );
        assert_eq!(
            "*".parse::<Topic>(),
            Err(TopicError::InvalidNamespaceByte { byte: b'*', pos: 0 })
        );
    }

    #[test]
    fn length_limit_is_255_bytes() {
        let max = format!("ns:{}", "x".repeat(MAX_TOPIC_LEN - 3));
        assert_eq!(topic(&max).as_str().len(), MAX_TOPIC_LEN);
        let over = format!("{max}x");
        assert_eq!(over.parse::<Topic>(), Err(TopicError::TooLong { len: 256 }));
    }

    #[test]
    fn every_single_byte_is_classified_per_the_grammar() {
        for b in 0u8..=255 {
            let ns_ok = b.is_ascii_alphanumeric() || b"_-.".contains(&b);
            let res_ok = ns_ok || b":=@".contains(&b);
            // Non-ASCII bytes cannot form a one-byte str; test through a char.
            let Ok(s) = std::str::from_utf8(&[b]).map(str::to_owned) else {
                continue;
            };
            // `n:` is an empty resource, so `:` is rejected here too.
            assert_eq!(
                format!("n{s}").parse::<Topic>().is_ok(),
                ns_ok,
                "ns byte {b:#x}"
            );
            assert_eq!(
                format!("n:{s}").parse::<Topic>().is_ok(),
                res_ok,
                "resource byte {b:#x}"
            );
        }
    }

    #[test]
    fn topic_serde_round_trip_and_validation() {
        let t = topic("bookings:42");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"bookings:42\"");
        let back: Topic = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        // Escaped (owned) strings go through the same validation.
        let escaped: Topic = serde_json::from_str("\"bookings\\u003a42\"").unwrap();
        assert_eq!(escaped, t);
        assert!(serde_json::from_str::<Topic>("\"bad topic\"").is_err());
        assert!(serde_json::from_str::<Topic>("42").is_err());
    }

    #[test]
    fn topic_is_usable_as_map_key_queried_by_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(topic("a:b"), 1);
        assert_eq!(map.get("a:b"), Some(&1));
        let mut sorted = vec![topic("b"), topic("a:z"), topic("a")];
        sorted.sort();
        assert_eq!(sorted, vec![topic("a"), topic("a:z"), topic("b")]);
    }

    #[test]
    fn pattern_forms_match_as_specified() {
        let all = pattern("*", None);
        let bare = pattern("bookings", None);
        let any = pattern("bookings:*", None);
        let exact = pattern("bookings:42", None);
        let cases = [
            ("bookings", [true, true, false, false]),
            ("bookings:42", [true, false, true, true]),
            ("bookings:43", [true, false, true, false]),
            ("bookings:42:x", [true, false, true, false]),
            ("bookingsx", [true, false, false, false]),
            ("bookingsx:42", [true, false, false, false]),
            ("guests:42", [true, false, false, false]),
            ("book", [true, false, false, false]),
        ];
        for (t, expected) in cases {
            let t = topic(t);
            let got = [
                all.matches(&t),
                bare.matches(&t),
                any.matches(&t),
                exact.matches(&t),
            ];
            assert_eq!(got, expected, "topic {t}");
        }
    }

    #[test]
    fn sub_is_substituted_in_the_resource() {
        let p = pattern("users:{sub}", Some("alice"));
        assert_eq!(p.as_str(), "users:alice");
        assert!(p.matches(&topic("users:alice")));
        assert!(!p.matches(&topic("users:bob")));
        let p = pattern("chat:{sub}:inbox-{sub}", Some("u1"));
        assert!(p.matches(&topic("chat:u1:inbox-u1")));
        // A `sub` holding `:` is literal: it stays one exact topic.
        let p = pattern("users:{sub}", Some("a:b"));
        assert!(p.matches(&topic("users:a:b")));
        assert!(!p.matches(&topic("users:a")));
    }

    #[test]
    fn sub_can_never_widen_a_pattern() {
        let probes = [
            "users",
            "users:x",
            "users:*",
            "users:a",
            "users:a:b",
            "other:x",
            "a",
            "x",
        ];
        for sub in [
            "*", "a:*", ":*", "*:*", "{sub}", "", "a b", "../x", "x\n", "ü",
        ] {
            let p = pattern("users:{sub}", Some(sub));
            for probe in probes {
                let Ok(t) = probe.parse::<Topic>() else {
                    continue;
                };
                let expected = t.as_str() == format!("users:{sub}");
                assert_eq!(p.matches(&t), expected, "sub {sub:?} probe {probe}");
            }
        }
        // `{sub}` inserted text is not rescanned for placeholders.
        let p = pattern("users:{sub}", Some("{sub}"));
        assert_eq!(p.as_str(), "users:{sub}");
        assert!(!p.matches(&topic("users:x")));
    }

    #[test]
    fn sub_making_an_overlong_topic_matches_nothing() {
        let p = pattern("users:{sub}", Some(&"x".repeat(300)));
        assert!(!p.matches(&topic("users:x")));
    }

    #[test]
    fn pattern_errors_are_typed() {
        let err = |p: &str, sub: Option<&str>| TopicPattern::parse(p, sub).unwrap_err();
        assert_eq!(err("", None), PatternError::Empty);
        assert_eq!(err("users:{sub}", None), PatternError::SubUnavailable);
        assert_eq!(
            err("{sub}:x", Some("a")),
            PatternError::SubInNamespace { pos: 0 }
        );
        assert_eq!(
            err("u{sub}", Some("a")),
            PatternError::SubInNamespace { pos: 1 }
        );
        assert_eq!(
            err("ns:a*", None),
            PatternError::MisplacedWildcard { pos: 4 }
        );
        assert_eq!(
            err("ns:*a", None),
            PatternError::MisplacedWildcard { pos: 3 }
        );
        assert_eq!(err("*:x", None), PatternError::MisplacedWildcard { pos: 0 });
        assert_eq!(err("ns*", None), PatternError::MisplacedWildcard { pos: 2 });
        assert_eq!(err("**", None), PatternError::MisplacedWildcard { pos: 0 });
        assert_eq!(err(":x", None), PatternError::EmptyNamespace);
        assert_eq!(err("ns:", None), PatternError::EmptyResource);
        assert_eq!(
            err("ns:{user}", Some("a")),
            PatternError::InvalidByte { byte: b'{', pos: 3 }
        );
        assert_eq!(
            err("ns:a}", Some("a")),
            PatternError::InvalidByte { byte: b'}', pos: 4 }
        );
        assert_eq!(
            err("n s", None),
            PatternError::InvalidByte { byte: b' ', pos: 1 }
        );
        let long = format!("ns:{}", "x".repeat(300));
        assert_eq!(err(&long, None), PatternError::TooLong { len: 303 });
        assert_eq!(
            err(&"n".repeat(256), None),
            PatternError::TooLong { len: 256 }
        );
    }

    #[test]
    fn sub_is_ignored_when_no_placeholder() {
        assert_eq!(
            pattern("bookings:*", Some("*")),
            pattern("bookings:*", None)
        );
        assert_eq!(
            pattern("bookings:1", Some("x")),
            pattern("bookings:1", None)
        );
    }

    #[test]
    fn property_exact_pattern_matches_only_itself() {
        let topics: Vec<Topic> = [
            "a",
            "a:1",
            "a:2",
            "a:1:2",
            "b",
            "b:1",
            "ab",
            "ab:1",
            "a.b:c=d@e",
        ]
        .iter()
        .map(|s| topic(s))
        .collect();
        for p in &topics {
            let exact = pattern(p.as_str(), None);
            let wild = pattern(&format!("{}:*", p.namespace()), None);
            for t in &topics {
                assert_eq!(exact.matches(t), p == t, "{p} vs {t}");
                assert_eq!(
                    wild.matches(t),
                    t.namespace() == p.namespace() && t.resource().is_some(),
                    "{}:* vs {t}",
                    p.namespace()
                );
            }
        }
    }

    #[test]
    fn validate_namespace_accepts_only_namespaces() {
        assert!(validate_namespace("bookings").is_ok());
        assert!(validate_namespace("a.b-c_d").is_ok());
        assert_eq!(validate_namespace(""), Err(TopicError::EmptyNamespace));
        assert_eq!(
            validate_namespace("a:b"),
            Err(TopicError::InvalidNamespaceByte { byte: b':', pos: 1 })
        );
    }
}
