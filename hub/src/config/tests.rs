//! Unit tests of configuration loading.

use super::*;

/// The example config the project ships (`hub/config.example.toml`).
const EXAMPLE_TOML: &str = include_str!("../../config.example.toml");

const SECRET: &str = "a-test-secret-of-enough-length";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn with_secret(toml: &str) -> String {
    format!("{toml}\n[auth]\njwt_secret = \"{SECRET}\"\n")
}

fn load_str(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml_str(toml, &env(pairs))
}

fn err_text(toml: &str, pairs: &[(&str, &str)]) -> String {
    load_str(toml, pairs).unwrap_err().to_string()
}

#[test]
fn defaults_without_file_are_dev_mode() {
    let c = Config::load(None, &[]).unwrap();
    assert!(c.dev_mode);
    assert_eq!(
        c.listen,
        "127.0.0.1:8080".parse().unwrap(),
        "dev mode binds loopback"
    );
    assert!(c.warnings.is_empty());
    assert_eq!(c.redis_url, None);
    assert_eq!(c.node_name, None);
    assert_eq!(c.drain_timeout, secs(10));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.auth.algorithm, JwtAlgorithm::HS256);
    assert_eq!(c.auth.key, JwtKey::Secret(Secret::new(DEV_SECRET)));
    assert!(c.api_keys.is_empty());
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.max_frame_bytes, 65536);
    assert_eq!(c.limits.outbox_size, 1024);
    assert_eq!(c.limits.idempotency_window, secs(600));
    let names: Vec<&str> = c.namespaces.keys().map(String::as_str).collect();
    assert_eq!(names, ["bookings", "cities", "food", "guests", "tables"]);
    for ns in c.namespaces.values() {
        assert!(ns.presence && ns.join_leave);
        assert!(!ns.client_publish && !ns.public);
        assert_eq!(ns.history_size, 100);
        assert_eq!(ns.history_ttl, secs(24 * 3600));
    }
    assert!(c.namespace("bookings").is_some());
    assert!(c.namespace("payments").is_none());
}

#[test]
fn example_config_loads_as_documented() {
    let c = load_str(EXAMPLE_TOML, &[]).unwrap();
    assert_eq!(c.redis, RedisSettings::default());
    assert!(!c.dev_mode);
    // The example runs on the in-memory broker; redis_url is shown commented out.
    assert!(c.redis_url.is_none());
    assert_eq!(c.node_name.as_deref(), Some("fra-1"));
    assert_eq!(c.api_keys.len(), 1);
    assert_eq!(c.api_keys[0].name, "booking-service");
    assert_eq!(c.api_keys[0].publish.len(), 2);
    assert_eq!(
        c.namespaces.len(),
        1,
        "file namespaces replace the defaults"
    );
    let b = c.namespace("bookings").unwrap();
    assert_eq!(b.history_size, 1000);
    assert!(!b.presence);
    assert_eq!(c.limits, Limits::default());
}

#[test]
fn example_config_loads_from_a_file() {
    let dir = std::env::temp_dir().join(format!("hubbub-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, EXAMPLE_TOML).unwrap();
    let c = Config::load(Some(&path), &[]).unwrap();
    assert_eq!(c.namespaces.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = Config::load(Some(&dir.join("nope.toml")), &[]).unwrap_err();
    assert!(matches!(missing, ConfigError::ReadFile { .. }), "{missing}");
}

#[test]
fn file_without_auth_is_refused() {
    let e = load_str("", &[]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingKey { key, .. } if key == "auth.jwt_secret"),
        "{e}"
    );
}

#[test]
fn file_without_namespaces_keeps_the_defaults() {
    let c = load_str(&with_secret("listen = \"127.0.0.1:9000\""), &[]).unwrap();
    assert_eq!(c.namespaces.len(), 5);
    assert_eq!(c.listen.port(), 9000);
}

#[test]
fn empty_namespaces_table_is_an_error() {
    let e = load_str(&with_secret("[namespaces]"), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::NoNamespaces { .. }), "{e}");
}

#[test]
fn unknown_keys_are_named() {
    assert_eq!(
        err_text(&with_secret("colour = 1"), &[]),
        "unknown key `colour`"
    );
    assert_eq!(
        err_text(&with_secret("[limits]\nmax_frame = 1"), &[]),
        "unknown key `limits.max_frame`"
    );
    assert_eq!(
        err_text(
            "[auth]\njwt_secret = \"0123456789abcdef\"\nsecret = \"x\"",
            &[]
        ),
        "unknown key `auth.secret`"
    );
    assert_eq!(
        err_text(&with_secret("[namespaces.chat]\nhistory = 1"), &[]),
        "unknown key `namespaces.chat.history`"
    );
    assert_eq!(
        err_text(
            &with_secret("[[api_keys]]\nname = \"a\"\nkey_sha256 = \"00\"\nextra = 1"),
            &[]
        ),
        "api_keys[0].key_sha256: expected 64 hex digits (a SHA-256): Invalid string length"
    );
    let hash = "00".repeat(32);
    assert_eq!(
        err_text(
            &with_secret(&format!(
                "[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{hash}\"\nextra = 1"
            )),
            &[]
        ),
        "unknown key `api_keys[0].extra`"
    );
}

#[test]
fn values_out_of_range_name_the_key() {
    assert_eq!(
        err_text(&with_secret("[limits]\nmax_frame_bytes = 12"), &[]),
        "limits.max_frame_bytes: must be between 256 and 16777216, got 12"
    );
    assert_eq!(
        err_text(&with_secret("[limits]\nmax_subscriptions = -1"), &[]),
        "limits.max_subscriptions: must be between 1 and 100000, got -1"
    );
    assert_eq!(
        err_text(&with_secret("[limits]\nping_interval = \"0s\""), &[]),
        "limits.ping_interval: must be between 1s and 10m, got 0s"
    );
    assert_eq!(
        err_text(&with_secret("[namespaces.a]\nhistory_size = 100001"), &[]),
        "namespaces.a.history_size: must be between 0 and 100000, got 100001"
    );
    assert!(
        err_text(&with_secret("drain_timeout = \"soon\""), &[])
            .starts_with("drain_timeout: invalid duration \"soon\"")
    );
    assert_eq!(
        err_text(&with_secret("drain_timeout = 10"), &[]),
        "drain_timeout: expected a duration string such as \"5s\", got integer"
    );
    assert_eq!(
        err_text(&with_secret("[namespaces.a]\npresence = \"yes\""), &[]),
        "namespaces.a.presence: expected true or false, got string"
    );
    assert_eq!(
        err_text(&with_secret("log_format = \"xml\""), &[]),
        "log_format: expected \"text\" or \"json\", got \"xml\""
    );
    assert!(
        err_text(&with_secret("listen = \"localhost:80\""), &[])
            .starts_with("listen: invalid socket address")
    );
    assert_eq!(
        err_text(&with_secret("node_name = \"\""), &[]),
        "node_name: must not be empty"
    );
    assert!(
        err_text(&with_secret("node_name = \"a b\""), &[])
            .starts_with("node_name: must be 1 to 64 bytes")
    );
    assert_eq!(
        err_text(&with_secret("limits = 3"), &[]),
        "limits: expected a table, got integer"
    );
    let syntax = load_str("listen = ", &[]).unwrap_err();
    assert!(matches!(syntax, ConfigError::Syntax { .. }), "{syntax}");
}

#[test]
fn namespace_names_must_be_topic_namespaces() {
    let e = load_str(&with_secret("[namespaces.\"a:b\"]"), &[]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::InvalidNamespace { key, .. } if key == "namespaces.a:b"),
        "{e}"
    );
    let e = load_str(&with_secret("[namespaces]\nchat = 1"), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "namespaces.chat: expected a table, got integer"
    );
}

#[test]
fn namespace_options_parse() {
    let c = load_str(
        &with_secret(
            "[namespaces.chat]\nhistory_size = 0\nhistory_ttl = \"1h\"\njoin_leave = true\nclient_publish = true\npublic = true",
        ),
        &[],
    )
    .unwrap();
    let chat = c.namespace("chat").unwrap();
    assert_eq!(
        *chat,
        NamespaceConfig {
            history_size: 0,
            history_ttl: secs(3600),
            presence: false,
            join_leave: true,
            client_publish: true,
            public: true,
        }
    );
}

#[test]
fn auth_rules() {
    let e = load_str("[auth]\njwt_secret = \"short\"", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "auth.jwt_secret: must be at least 16 bytes, got 5"
    );
    let e = load_str(&format!("[auth]\njwt_secret = \"{DEV_SECRET}\""), &[]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::DevSecretRefused { key } if key == "auth.jwt_secret"),
        "{e}"
    );
    let e = load_str(
        &format!("[auth]\njwt_secret = \"{SECRET}\"\njwt_public_key_file = \"k.pem\""),
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::ConflictingKeys { .. }), "{e}");
    let e = load_str("[auth]\njwt_algorithm = \"RS256\"", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "auth.jwt_public_key_file: required for RS256"
    );
    let e = load_str(
        &format!("[auth]\njwt_algorithm = \"ES256\"\njwt_secret = \"{SECRET}\""),
        &[],
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "auth.jwt_secret: cannot be used with ES256");
    let e = load_str("[auth]\njwt_public_key_file = \"k.pem\"", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "auth.jwt_public_key_file: cannot be used with HS256"
    );
    let e = load_str("[auth]\njwt_algorithm = \"none\"", &[]).unwrap_err();
    assert!(matches!(e, ConfigError::InvalidChoice { .. }), "{e}");
    let c = load_str(
        &format!("[auth]\njwt_algorithm = \"HS512\"\njwt_secret = \"{SECRET}\"\nissuer = \"i\"\naudience = \"a\""),
        &[],
    )
    .unwrap();
    assert_eq!(c.auth.algorithm, JwtAlgorithm::HS512);
    assert_eq!(c.auth.issuer.as_deref(), Some("i"));
    assert_eq!(c.auth.audience.as_deref(), Some("a"));
}

#[test]
fn public_key_files_are_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("hubbub-keys-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("rsa.pem", crate::auth::test_keys::RSA_PUBLIC);
    write("ec.pem", crate::auth::test_keys::EC_PUBLIC);
    write("ec384.pem", crate::auth::test_keys::EC384_PUBLIC);
    write("ec_priv.pem", crate::auth::test_keys::EC_PRIVATE);
    write(
        "junk.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    let cfg = dir.join("hubbub.toml");
    let load = |alg: &str, file: &str| {
        std::fs::write(
            &cfg,
            format!("[auth]\njwt_algorithm = \"{alg}\"\njwt_public_key_file = \"{file}\""),
        )
        .unwrap();
        Config::load(Some(&cfg), &[])
    };
    // Relative to the config file's directory.
    let c = load("RS256", "rsa.pem").unwrap();
    assert_eq!(
        c.auth.key,
        JwtKey::PublicKeyPem(crate::auth::test_keys::RSA_PUBLIC.to_owned())
    );
    assert!(load("ES256", "ec.pem").is_ok());
    let e = load("ES256", "ec384.pem").unwrap_err();
    assert!(matches!(e, ConfigError::WrongCurve { .. }), "{e}");
    let e = load("ES256", "rsa.pem").unwrap_err();
    assert!(matches!(e, ConfigError::InvalidPublicKey { .. }), "{e}");
    let e = load("RS256", "ec.pem").unwrap_err();
    assert!(matches!(e, ConfigError::InvalidPublicKey { .. }), "{e}");
    let e = load("RS256", "junk.pem").unwrap_err();
    assert!(matches!(e, ConfigError::InvalidPublicKey { .. }), "{e}");
    let e = load("ES256", "ec_priv.pem").unwrap_err();
    assert!(matches!(e, ConfigError::PrivateKeyGiven { .. }), "{e}");
    let e = load("ES256", "missing.pem").unwrap_err();
    assert!(
        matches!(&e, ConfigError::ReadKeyFile { key, .. } if key == "auth.jwt_public_key_file"),
        "{e}"
    );
    // From the environment, relative to the working directory, and named so.
    let e = Config::load(
        None,
        &env(&[
            ("HUBBUB_AUTH__JWT_ALGORITHM", "ES256"),
            ("HUBBUB_AUTH__JWT_PUBLIC_KEY_FILE", "ec.pem"),
        ]),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "auth.jwt_public_key_file (from HUBBUB_AUTH__JWT_PUBLIC_KEY_FILE): cannot read"
        ),
        "{e}"
    );
    let abs = dir.join("ec.pem").display().to_string();
    let c = Config::load(
        None,
        &env(&[
            ("HUBBUB_AUTH__JWT_ALGORITHM", "ES256"),
            ("HUBBUB_AUTH__JWT_PUBLIC_KEY_FILE", &abs),
        ]),
    )
    .unwrap();
    assert!(!c.dev_mode);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn env_overrides_file_and_is_typed_by_key() {
    let c = load_str(
        EXAMPLE_TOML,
        &[
            ("HUBBUB_LISTEN", "127.0.0.1:7000"),
            ("HUBBUB_AUTH__JWT_SECRET", "1234567890123456"),
            ("HUBBUB_LIMITS__MAX_FRAME_BYTES", "1024"),
            ("HUBBUB_LIMITS__PING_INTERVAL", "5s"),
            ("HUBBUB_NAMESPACES__BOOKINGS__HISTORY_SIZE", "7"),
            ("HUBBUB_NAMESPACES__BOOKINGS__PRESENCE", "true"),
            ("HUBBUB_NAMESPACES__CHAT__CLIENT_PUBLISH", "true"),
            ("HUBBUB_LOG_FORMAT", "json"),
            ("HUBBUB_CONFIG", "/ignored.toml"),
            ("HUBBUB_LOG", "debug"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 7000);
    assert_eq!(c.auth.key, JwtKey::Secret(Secret::new("1234567890123456")));
    assert_eq!(c.limits.max_frame_bytes, 1024);
    assert_eq!(c.limits.ping_interval, secs(5));
    assert_eq!(c.log_format, LogFormat::Json);
    let b = c.namespace("bookings").unwrap();
    assert_eq!(
        (b.history_size, b.presence, b.history_ttl),
        (7, true, secs(24 * 3600))
    );
    assert!(c.namespace("chat").unwrap().client_publish);
    assert_eq!(c.namespaces.len(), 2);
}

#[test]
fn redis_settings_are_validated_and_have_an_env_form() {
    let c = load_str(&with_secret(""), &[]).unwrap();
    assert_eq!(c.redis, RedisSettings::default());
    let c = load_str(
        &with_secret("[redis]\nkey_prefix = \"hb:eu\"\npresence_ttl = \"5s\"\n"),
        &[("HUBBUB_REDIS__PROBE_INTERVAL", "250ms")],
    )
    .unwrap();
    assert_eq!(c.redis.key_prefix, "hb:eu");
    assert_eq!(c.redis.presence_ttl, secs(5));
    assert_eq!(c.redis.probe_interval, Duration::from_millis(250));
    assert!(
        err_text(&with_secret("[redis]\nkey_prefix = \"a{b}\"\n"), &[])
            .starts_with("redis.key_prefix: must be 1 to 64 bytes")
    );
    assert!(
        err_text(&with_secret("[redis]\npresence_ttl = \"0s\"\n"), &[])
            .starts_with("redis.presence_ttl")
    );
    assert!(err_text(&with_secret("[redis]\nttl = \"1s\"\n"), &[]).contains("redis.ttl"));
}

#[test]
fn env_namespaces_follow_the_toml_rule() {
    // Env namespaces replace the built-in set, as a TOML table does...
    let c = Config::load(
        None,
        &env(&[("HUBBUB_NAMESPACES__FOOD__HISTORY_SIZE", "3")]),
    )
    .unwrap();
    let names: Vec<&str> = c.namespaces.keys().map(String::as_str).collect();
    assert_eq!(names, ["food"]);
    let food = c.namespace("food").unwrap();
    assert_eq!(food.history_size, 3);
    assert!(
        !food.presence,
        "the other options are the key defaults, as in TOML"
    );
    let toml = Config::load(None, &[]).unwrap();
    assert_eq!(
        Some(food),
        Config::from_toml_str(&with_secret("[namespaces.food]\nhistory_size = 3"), &[])
            .unwrap()
            .namespace("food"),
        "env and TOML give the same namespace"
    );
    assert_eq!(toml.namespaces.len(), 5, "without either, the built-in set");
    // ...and are merged into the file's set (env wins per key).
    let c = load_str(
        &with_secret("[namespaces.a]\nhistory_size = 1\npresence = true"),
        &[
            ("HUBBUB_NAMESPACES__A__HISTORY_SIZE", "2"),
            ("HUBBUB_NAMESPACES__B__PUBLIC", "true"),
        ],
    )
    .unwrap();
    let a = c.namespace("a").unwrap();
    assert_eq!((a.history_size, a.presence), (2, true));
    assert!(c.namespace("b").unwrap().public);
    assert_eq!(c.namespaces.len(), 2);
}

#[test]
fn env_errors_name_the_variable() {
    assert_eq!(
        err_text(EXAMPLE_TOML, &[("HUBBUB_LIMITS__MAX_FRAME_BYTES", "12")]),
        "limits.max_frame_bytes (from HUBBUB_LIMITS__MAX_FRAME_BYTES): must be between 256 and 16777216, got 12"
    );
    assert_eq!(
        err_text(EXAMPLE_TOML, &[("HUBBUB_LIMITS__MAX_FRAME_BYTES", "64k")]),
        "HUBBUB_LIMITS__MAX_FRAME_BYTES: expected an integer, got \"64k\""
    );
    assert_eq!(
        err_text(EXAMPLE_TOML, &[("HUBBUB_NAMESPACES__A__PUBLIC", "yes")]),
        "HUBBUB_NAMESPACES__A__PUBLIC: expected true or false, got \"yes\""
    );
    // Unknown variables are warnings, not errors (Kubernetes injects
    // `HUBBUB_*` service links), naming the nearest key when there is one.
    for (var, suggestion) in [
        ("HUBBUB_LISTN", Some("HUBBUB_LISTEN=1")),
        ("HUBBUB_AUTH", None),
        ("HUBBUB_LIMITS__", None),
        (
            "HUBBUB_AUTH__JWT_SECRET__X",
            Some("HUBBUB_AUTH__JWT_SECRET"),
        ),
        ("HUBBUB_NAMESPACES__BOOKINGS", None),
        ("HUBBUB_NAMESPACES____PRESENCE", None),
        (
            "HUBBUB_NAMESPACES__BOOKINGS__PRESENSE",
            Some("HUBBUB_NAMESPACES__BOOKINGS__PRESENCE=1"),
        ),
        ("HUBBUB_NAMESPACES__BOOKINGS__COLOUR", None),
        ("HUBBUB_API_KEYS__0__NAME", None),
        ("HUBBUB_", None),
        ("HUBBUB_PORT", Some("HUBBUB_LISTEN=0.0.0.0:1")),
        (
            "HUBBUB_LIMITS__API_RATES",
            Some("HUBBUB_LIMITS__API_RATE=1"),
        ),
        ("HUBBUB_REDIS_URI", Some("HUBBUB_REDIS_URL")),
    ] {
        let c = load_str(EXAMPLE_TOML, &[(var, "1")]).unwrap();
        assert_eq!(
            c.warnings,
            [ConfigWarning::UnknownEnvVar {
                var: var.to_owned(),
                suggestion: suggestion.map(str::to_owned),
            }],
            "{var}"
        );
    }
    let c = load_str(EXAMPLE_TOML, &[("HUBBUB_LISTN", "0.0.0.0:9000")]).unwrap();
    assert_eq!(
        c.warnings[0].to_string(),
        "HUBBUB_LISTN is not a hubbub setting and is ignored; did you mean `HUBBUB_LISTEN=0.0.0.0:9000`?"
    );
    let e = Config::load(None, &env(&[("HUBBUB_NAMESPACES__A B__PRESENCE", "true")])).unwrap_err();
    assert!(matches!(e, ConfigError::InvalidNamespace { .. }), "{e}");
}

#[test]
fn env_secret_stays_a_string() {
    let c = load_str("", &[("HUBBUB_AUTH__JWT_SECRET", "1234567890123456789")]).unwrap();
    assert_eq!(
        c.auth.key,
        JwtKey::Secret(Secret::new("1234567890123456789"))
    );
}

#[test]
fn env_api_keys_replace_file_keys() {
    let hash = "ab".repeat(32);
    let c = load_str(
        EXAMPLE_TOML,
        &[(
            "HUBBUB_API_KEYS",
            &format!("[{{name=\"x\", key_sha256=\"{hash}\", publish=[\"a:*\"]}}]"),
        )],
    )
    .unwrap();
    assert_eq!(c.api_keys.len(), 1);
    assert_eq!(c.api_keys[0].name, "x");
    assert_eq!(c.api_keys[0].key_sha256, [0xab; 32]);
    assert!(!c.api_keys[0].operator, "operator defaults to false");
    let c = load_str(
        EXAMPLE_TOML,
        &[(
            "HUBBUB_API_KEYS",
            &format!("[{{name=\"ops\", key_sha256=\"{hash}\", operator=true}}]"),
        )],
    )
    .unwrap();
    assert!(c.api_keys[0].operator, "the env form takes operator too");
    let e = load_str(
        EXAMPLE_TOML,
        &[(
            "HUBBUB_API_KEYS",
            &format!("[{{name=\"ops\", key_sha256=\"{hash}\", operator=\"yes\"}}]"),
        )],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "api_keys[0].operator (from HUBBUB_API_KEYS): expected true or false, got string"
    );
    let e = load_str(EXAMPLE_TOML, &[("HUBBUB_API_KEYS", "[{name=\"x\"}]")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "api_keys[0].key_sha256 (from HUBBUB_API_KEYS): missing"
    );
    let e = load_str(
        EXAMPLE_TOML,
        &[("HUBBUB_API_KEYS", "[]\nlisten = \"1.2.3.4:5\"")],
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::EnvToml { .. }), "{e}");
    let e = load_str(EXAMPLE_TOML, &[("HUBBUB_API_KEYS", "{name=\"x\"}")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "api_keys (from HUBBUB_API_KEYS): expected an array, got table"
    );
}

#[test]
fn api_keys_are_validated() {
    let hash = "cd".repeat(32);
    let key = |name: &str, hash: &str, publish: &str| {
        format!("[[api_keys]]\nname = \"{name}\"\nkey_sha256 = \"{hash}\"\npublish = {publish}\n")
    };
    let e = load_str(&with_secret(&key("a", &hash, "[\"users:{sub}\"]")), &[]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::InvalidPattern { key, source: PatternError::SubUnavailable, .. } if key == "api_keys[0].publish[0]"),
        "{e}"
    );
    let e = load_str(&with_secret(&key("a", &hash, "[1]")), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "api_keys[0].publish[0]: expected a pattern string, got integer"
    );
    let two = format!(
        "{}{}",
        key("a", &hash, "[]"),
        key("a", &"ef".repeat(32), "[]")
    );
    let e = load_str(&with_secret(&two), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::DuplicateApiKeyName { .. }), "{e}");
    let two = format!(
        "{}{}",
        key("a", &hash, "[]"),
        key("b", &hash.to_uppercase(), "[]")
    );
    let e = load_str(&with_secret(&two), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::DuplicateApiKeyHash { .. }), "{e}");
    let e = load_str(&with_secret(&key("a", &"zz".repeat(32), "[]")), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::InvalidKeyHash { .. }), "{e}");
    let e = load_str(&with_secret("api_keys = [1]"), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e}");
}

#[test]
fn dev_mode_rules() {
    // An env secret means no dev mode.
    let c = Config::load(None, &env(&[("HUBBUB_AUTH__JWT_SECRET", SECRET)])).unwrap();
    assert!(!c.dev_mode);
    // DEV_SECRET given explicitly is refused, by file or by env.
    let e = Config::load(None, &env(&[("HUBBUB_AUTH__JWT_SECRET", DEV_SECRET)])).unwrap_err();
    assert!(matches!(e, ConfigError::DevSecretRefused { .. }), "{e}");
    // Dev mode with an asymmetric algorithm has no key to use.
    let e = Config::load(None, &env(&[("HUBBUB_AUTH__JWT_ALGORITHM", "RS256")])).unwrap_err();
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e}");
    // Dev mode keeps env issuer/audience.
    let c = Config::load(None, &env(&[("HUBBUB_AUTH__ISSUER", "me")])).unwrap();
    assert!(c.dev_mode);
    assert_eq!(c.auth.issuer.as_deref(), Some("me"));
    // Port, namespaces and limits keep dev mode; an explicit listen is kept.
    let c = Config::load(
        None,
        &env(&[
            ("HUBBUB_LISTEN", "0.0.0.0:9000"),
            ("HUBBUB_NAMESPACES__CHAT__PUBLIC", "true"),
            ("HUBBUB_LIMITS__API_RATE", "5"),
        ]),
    )
    .unwrap();
    assert!(c.dev_mode);
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    // A production setting without a key is an error that says what to set.
    let hash = "ab".repeat(32);
    let keys = format!("[{{name=\"x\", key_sha256=\"{hash}\"}}]");
    for (var, value) in [
        ("HUBBUB_REDIS_URL", "redis://127.0.0.1:6379"),
        ("HUBBUB_API_KEYS", keys.as_str()),
    ] {
        let e = Config::load(None, &env(&[(var, value)])).unwrap_err();
        assert!(matches!(e, ConfigError::ProductionWithoutKey { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(var) && text.contains("HUBBUB_AUTH__JWT_SECRET"),
            "{text}"
        );
        let c = Config::load(
            None,
            &env(&[(var, value), ("HUBBUB_AUTH__JWT_SECRET", SECRET)]),
        )
        .unwrap();
        assert!(!c.dev_mode);
        assert_eq!(
            c.listen,
            "0.0.0.0:8080".parse().unwrap(),
            "production default"
        );
    }
    // An empty key list is not a production setting.
    let c = Config::load(None, &env(&[("HUBBUB_API_KEYS", "[]")])).unwrap();
    assert!(c.dev_mode);
}

#[test]
fn kubernetes_service_links_are_recognised() {
    for (var, value) in [
        ("HUBBUB_PORT", "tcp://10.0.0.1:8080"),
        ("HUBBUB_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("HUBBUB_PORT_8080_TCP_PROTO", "tcp"),
        ("HUBBUB_PORT_8080_TCP_PORT", "8080"),
        ("HUBBUB_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("HUBBUB_PORT_9090_UDP", "udp://10.0.0.1:9090"),
        ("HUBBUB_SERVICE_HOST", "10.0.0.1"),
        ("HUBBUB_SERVICE_PORT", "8080"),
        ("HUBBUB_SERVICE_PORT_HTTP", "8080"),
        ("HUBBUB_API_SERVICE_HOST", "10.0.0.2"),
        ("HUBBUB_API_PORT_80_TCP_ADDR", "10.0.0.2"),
    ] {
        let c = Config::load(None, &env(&[(var, value)])).unwrap();
        assert!(c.warnings.is_empty(), "{var}: {:?}", c.warnings);
    }
    for (var, value) in [
        ("HUBBUB_PORT", "9000"),
        ("HUBBUB_PORT_8080_TCP_X", "1"),
        ("HUBBUB_PORT_X_TCP", "1"),
        ("HUBBUB_PORT_80_HTTP", "1"),
    ] {
        let c = Config::load(None, &env(&[(var, value)])).unwrap();
        assert_eq!(c.warnings.len(), 1, "{var}");
    }
}

#[test]
fn every_example_key_has_a_working_env_form() {
    let hash = "12".repeat(32);
    let cases: &[(&str, &str)] = &[
        ("HUBBUB_LISTEN", "127.0.0.1:1"),
        ("HUBBUB_REDIS_URL", "rediss://h:1"),
        ("HUBBUB_NODE_NAME", "n-1"),
        ("HUBBUB_DRAIN_TIMEOUT", "1s"),
        ("HUBBUB_LOG_FORMAT", "json"),
        ("HUBBUB_AUTH__JWT_ALGORITHM", "HS384"),
        ("HUBBUB_AUTH__JWT_SECRET", SECRET),
        ("HUBBUB_AUTH__ISSUER", "i"),
        ("HUBBUB_AUTH__AUDIENCE", "a"),
        ("HUBBUB_LIMITS__MAX_FRAME_BYTES", "1000"),
        ("HUBBUB_LIMITS__CONNECT_TIMEOUT", "1s"),
        ("HUBBUB_LIMITS__PING_INTERVAL", "2s"),
        ("HUBBUB_LIMITS__MAX_SUBSCRIPTIONS", "3"),
        ("HUBBUB_LIMITS__IDEMPOTENCY_WINDOW", "4s"),
        ("HUBBUB_LIMITS__OUTBOX_SIZE", "50"),
        ("HUBBUB_NAMESPACES__BOOKINGS__HISTORY_SIZE", "9"),
        ("HUBBUB_NAMESPACES__BOOKINGS__HISTORY_TTL", "9s"),
        ("HUBBUB_NAMESPACES__BOOKINGS__PRESENCE", "true"),
        ("HUBBUB_NAMESPACES__BOOKINGS__JOIN_LEAVE", "true"),
        ("HUBBUB_NAMESPACES__BOOKINGS__CLIENT_PUBLISH", "true"),
        ("HUBBUB_NAMESPACES__BOOKINGS__PUBLIC", "true"),
    ];
    let api_keys = format!("[{{name=\"k\", key_sha256=\"{hash}\"}}]");
    let mut all = cases.to_vec();
    all.push(("HUBBUB_API_KEYS", &api_keys));
    let c = load_str(EXAMPLE_TOML, &all).unwrap();
    assert_eq!(c.listen.port(), 1);
    assert_eq!(
        c.redis_url.as_ref().map(RedisUrl::expose),
        Some("rediss://h:1")
    );
    assert_eq!(c.node_name.as_deref(), Some("n-1"));
    assert_eq!(c.drain_timeout, secs(1));
    assert_eq!(c.auth.algorithm, JwtAlgorithm::HS384);
    assert_eq!(
        (c.auth.issuer.as_deref(), c.auth.audience.as_deref()),
        (Some("i"), Some("a"))
    );
    assert_eq!(
        c.limits,
        Limits {
            max_frame_bytes: 1000,
            connect_timeout: secs(1),
            ping_interval: secs(2),
            max_subscriptions: 3,
            idempotency_window: secs(4),
            outbox_size: 50,
            ..Limits::default()
        }
    );
    let b = c.namespace("bookings").unwrap();
    assert_eq!(
        *b,
        NamespaceConfig {
            history_size: 9,
            history_ttl: secs(9),
            presence: true,
            join_leave: true,
            client_publish: true,
            public: true,
        }
    );
    assert_eq!(c.api_keys[0].name, "k");
    assert!(c.api_keys[0].publish.is_empty());
}

#[test]
fn redis_urls_are_checked_and_redacted() {
    for bad in [
        "localhost:6379",
        "http://u:pw-1@h",
        "redis://",
        "REDIS://h",
        "pw-2@h:6379",
    ] {
        let e = load_str(&with_secret(&format!("redis_url = \"{bad}\"")), &[]).unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidRedisUrl { .. }),
            "{bad}: {e}"
        );
        assert!(
            !e.to_string().contains("pw-"),
            "the value is not echoed: {e}"
        );
    }
    let cases = [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://user:pw@h:6379", "redis://user:***@h:6379"),
        ("redis://:pw@h", "redis://:***@h"),
        ("rediss://u:p@ss@w0rd@h/1", "rediss://u:***@h/1"),
        ("redis://u:p?a@h", "redis://u:***@h"),
        (
            "redis-sentinel://u:pw@h:26379/1?sentinelServiceName=m&sentinelPassword=spw",
            "redis-sentinel://u:***@h:26379/1?sentinelServiceName=m&sentinelPassword=***",
        ),
        (
            "redis-sentinel://u:pw@h/0?sentinelUsername=x@y&sentinelPassword=spw",
            "redis-sentinel://u:***@y&sentinelPassword=***",
        ),
    ];
    for (url, redacted) in cases {
        let u = RedisUrl::new(url).unwrap();
        assert_eq!(u.redacted(), redacted);
        assert_eq!(format!("{u}"), redacted);
        assert_eq!(u.expose(), url);
        let debug = format!("{u:?}");
        assert!(!debug.contains("pw") && !debug.contains("p@ss"), "{debug}");
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = load_str(
        &format!(
            "redis_url = \"redis://app:hunter2-redis@h:6379\"\n[auth]\njwt_secret = \"{SECRET}\""
        ),
        &[],
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("Secret([redacted])"), "{debug}");
    assert!(debug.contains("redis://app:***@h:6379"), "{debug}");
    let dev = format!("{:?}", Config::load(None, &[]).unwrap());
    assert!(!dev.contains(DEV_SECRET), "{dev}");
}

#[test]
fn hardening_keys_parse_and_are_checked() {
    let c = load_str(
        &with_secret(
            "allowed_origins = [\"https://app.example.com/\", \"http://localhost:5173\"]\n\
             [limits]\nmax_connections = 10\nmax_connections_per_user = 2\nconnection_rate_per_ip = 5\n\
             command_rate = 0\ncommand_burst = 7\napi_rate = 100\nmax_request_bytes = 70000",
        ),
        &[("HUBBUB_AUTH__LEEWAY", "30s")],
    )
    .unwrap();
    assert_eq!(
        c.allowed_origins,
        vec!["https://app.example.com", "http://localhost:5173"]
    );
    assert_eq!(
        (
            c.limits.max_connections,
            c.limits.max_connections_per_user,
            c.limits.connection_rate_per_ip
        ),
        (10, 2, 5)
    );
    assert_eq!(
        (
            c.limits.command_rate,
            c.limits.command_burst,
            c.limits.api_rate
        ),
        (0, 7, 100)
    );
    assert_eq!(c.auth.leeway, secs(30));
    assert!(
        err_text(&with_secret("allowed_origins = [\"app.example.com\"]"), &[])
            .contains("allowed_origins")
    );
    assert!(
        err_text(
            &with_secret("allowed_origins = [\"https://a.com/path\"]"),
            &[]
        )
        .contains("allowed_origins")
    );
    assert!(
        err_text(&with_secret("[limits]\nmax_request_bytes = 2048"), &[])
            .contains("limits.max_request_bytes")
    );
    let env = err_text(
        "",
        &[
            ("HUBBUB_ALLOWED_ORIGINS", "[\"ftp://x\"]"),
            ("HUBBUB_AUTH__JWT_SECRET", "0123456789abcdef0123"),
        ],
    );
    assert!(env.contains("HUBBUB_ALLOWED_ORIGINS"), "{env}");
}

#[test]
fn secret_rotation_needs_both_keys_and_a_time() {
    let old = "previous-secret-0123456789";
    let c = load_str(
        &with_secret(""),
        &[
            ("HUBBUB_AUTH__PREVIOUS_JWT_SECRET", old),
            ("HUBBUB_AUTH__PREVIOUS_SECRET_UNTIL", "2030-01-01T00:00:00Z"),
        ],
    )
    .unwrap();
    assert!(c.auth.previous_secret.is_some());
    assert!(
        !format!("{:?}", c.auth).contains(old),
        "the previous secret is redacted too"
    );
    let missing = err_text(
        &with_secret(""),
        &[("HUBBUB_AUTH__PREVIOUS_JWT_SECRET", old)],
    );
    assert!(missing.contains("auth.previous_secret_until"), "{missing}");
    let bad_time = err_text(
        &with_secret(""),
        &[
            ("HUBBUB_AUTH__PREVIOUS_JWT_SECRET", old),
            ("HUBBUB_AUTH__PREVIOUS_SECRET_UNTIL", "next tuesday"),
        ],
    );
    assert!(bad_time.contains("RFC 3339"), "{bad_time}");
}

#[test]
fn jwks_files_are_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("hubbub-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"ldyr8tLqMcvqooEFFGm8bjwh0RNVEJcwyHy2CccXaqA","y":"4f69DFpT6rNd8il6hSvTtghYcRTJT8LS6pfmWuLrvX8"}]}"#,
    )
    .unwrap();
    let empty = dir.join("empty.json");
    std::fs::write(&empty, r#"{"keys":[]}"#).unwrap();
    let toml = |file: &Path| {
        format!(
            "[auth]\njwt_algorithm = \"ES256\"\njwks_file = \"{}\"\n",
            file.display()
        )
    };
    let c = load_str(&toml(&good), &[]).unwrap();
    assert!(matches!(c.auth.key, JwtKey::Jwks(ref set) if set.keys.len() == 1));
    assert!(err_text(&toml(&empty), &[]).contains("auth.jwks_file"));
    assert!(err_text(&toml(&dir.join("missing.json")), &[]).contains("auth.jwks_file"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn jwks_urls_must_be_https_or_loopback() {
    let toml = |url: &str| format!("[auth]\njwt_algorithm = \"RS256\"\njwks_url = \"{url}\"\n");
    let c = load_str(&toml("https://auth.example.com/.well-known/jwks.json"), &[]).unwrap();
    assert!(
        matches!(c.auth.key, JwtKey::JwksUrl { ref url, refresh } if url.starts_with("https://") && refresh == secs(600))
    );
    assert!(load_str(&toml("http://127.0.0.1:8081/jwks"), &[]).is_ok());
    assert!(load_str(&toml("http://localhost/jwks"), &[]).is_ok());
    assert!(err_text(&toml("http://auth.example.com/jwks"), &[]).contains("auth.jwks_url"));
    assert!(err_text(&toml("ftp://x"), &[]).contains("auth.jwks_url"));
    let both =
        "[auth]\njwt_algorithm = \"RS256\"\njwks_url = \"https://a/j\"\njwks_file = \"j.json\"\n";
    assert!(err_text(both, &[]).contains("auth.jwks_url"));
    let hs = "[auth]\njwt_algorithm = \"HS256\"\njwks_url = \"https://a/j\"\n";
    assert!(err_text(hs, &[]).contains("auth.jwks_url"));
}

#[test]
fn trusted_proxies_parse_from_file_and_env() {
    let c = load_str(
        &with_secret("trusted_proxies = [\"10.0.0.0/8\", \"fdaa::/16\", \"192.0.2.1\"]\nclient_ip_header = \"fly-client-ip\""),
        &[],
    )
    .unwrap();
    assert_eq!(c.trusted_proxies.cidrs.len(), 3);
    assert_eq!(c.trusted_proxies.header, ClientIpHeader::FlyClientIp);
    assert!(c.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
    assert!(c.trusted_proxies.trusts("::ffff:10.1.2.3".parse().unwrap()));
    assert!(c.trusted_proxies.trusts("192.0.2.1".parse().unwrap()));
    assert!(!c.trusted_proxies.trusts("192.0.2.2".parse().unwrap()));
    let c = Config::load(
        None,
        &env(&[
            ("HUBBUB_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
            ("HUBBUB_CLIENT_IP_HEADER", "X-Forwarded-For"),
        ]),
    )
    .unwrap();
    assert_eq!(c.trusted_proxies.header, ClientIpHeader::XForwardedFor);
    assert!(c.dev_mode, "not a production setting");
    assert_eq!(
        err_text(&with_secret("trusted_proxies = [\"10.0.0.0/33\"]"), &[]),
        "trusted_proxies: expected a CIDR such as \"10.0.0.0/8\" or \"fdaa::/16\", or an address, got \"10.0.0.0/33\""
    );
    assert_eq!(
        err_text(&with_secret("client_ip_header = \"X-Real-IP\""), &[]),
        "client_ip_header: expected \"Fly-Client-IP\" or \"X-Forwarded-For\", got \"X-Real-IP\""
    );
    assert_eq!(
        Config::load(None, &[]).unwrap().trusted_proxies,
        TrustedProxies::default()
    );
}
