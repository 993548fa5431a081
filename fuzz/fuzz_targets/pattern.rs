//! `TopicPattern::parse` on arbitrary (pattern, sub, topic): never panics;
//! a pattern without `{sub}` round-trips through `Display`; every topic is a
//! valid exact pattern; and matching agrees with the contract: `*` matches
//! all, `ns` only the bare topic, `ns:*` every resource of `ns`, anything else
//! exactly the (substituted) text — so a `sub` can never widen a pattern.
#![no_main]

use hubbub::topic::{SUB_PLACEHOLDER, Topic, TopicPattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Option<&str>, &str)| {
    let (pattern, sub, topic) = input;
    let parsed = TopicPattern::parse(pattern, sub);
    if pattern.parse::<Topic>().is_ok() && !pattern.contains('{') {
        assert!(parsed.is_ok(), "the topic {pattern:?} is a valid pattern");
    }
    if pattern.contains(SUB_PLACEHOLDER) && sub.is_none() {
        assert!(parsed.is_err(), "{{sub}} without a subject: {pattern:?}");
    }
    let Ok(p) = parsed else { return };
    if !pattern.contains(SUB_PLACEHOLDER) {
        assert_eq!(p.as_str(), pattern);
        let again = TopicPattern::parse(&p.to_string(), None).expect("round-trips");
        assert_eq!(again, p);
    }
    let Ok(topic) = topic.parse::<Topic>() else {
        return;
    };
    let expected = if pattern == "*" {
        true
    } else if let Some(ns) = pattern.strip_suffix(":*") {
        topic.namespace() == ns && topic.resource().is_some()
    } else {
        // Exact (also a bare `ns`): the text after substitution, literally.
        topic.as_str() == p.as_str()
    };
    assert_eq!(
        p.matches(&topic),
        expected,
        "{pattern:?} (sub {sub:?}) against {topic}"
    );
});
