//! Checks for site values: domain names, emails, URLs, ports and port ranges, sizes, and strings
//! that still hold an angle-bracket placeholder such as `<BASE_DOMAIN>`. Each check answers with
//! what is wrong and what to write instead.

use crate::secret::REDACTED;
use crate::value::Value;

/// The rule kinds that [`check`] knows.
pub const KINDS: &[&str] = &[
    "domain",
    "email",
    "url",
    "port",
    "port_range",
    "size",
    "string",
    "secret",
    "bool",
    "int",
    "list",
    "map",
];

/// Check one value against a rule kind; `Err` says what is wrong.
pub fn check(kind: &str, v: &Value) -> Result<(), String> {
    match kind {
        "domain" => domain(str_of(v)?),
        "email" => email(str_of(v)?),
        "url" => url(str_of(v)?),
        "port" => port(v).map(|_| ()),
        "port_range" => port_range(v),
        "size" => size(v),
        "string" => match v {
            Value::Str(s) if !s.trim().is_empty() => Ok(()),
            Value::Str(_) => Err("must not be empty".into()),
            other => Err(format!("must be a string, found {}", other.type_name())),
        },
        "secret" => match v {
            Value::Secret(s) if !s.is_empty() => Ok(()),
            Value::Str(s) if !s.is_empty() => Ok(()),
            Value::Secret(_) | Value::Str(_) => Err("must not be empty".into()),
            other => Err(format!("must be a string, found {}", other.type_name())),
        },
        "bool" => match v {
            Value::Bool(_) => Ok(()),
            other => Err(format!(
                "must be true or false, found {}",
                other.type_name()
            )),
        },
        "int" => match v {
            Value::Int(_) => Ok(()),
            other => Err(format!(
                "must be a whole number, found {}",
                other.type_name()
            )),
        },
        "list" => match v {
            Value::List(_) => Ok(()),
            other => Err(format!("must be a list, found {}", other.type_name())),
        },
        "map" => match v {
            Value::Map(_) => Ok(()),
            other => Err(format!("must be a map, found {}", other.type_name())),
        },
        alternatives if is_enumeration(alternatives) => {
            let s = str_of(v)?;
            let options: Vec<&str> = alternatives.split('|').collect();
            if options.contains(&s) {
                return Ok(());
            }
            let near = options
                .iter()
                .map(|o| {
                    (
                        strsim::jaro_winkler(&o.to_lowercase(), &s.to_lowercase()),
                        o,
                    )
                })
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            Err(format!(
                "`{s}` is not one of {}{}",
                options.join(", "),
                near.map(|(_, o)| format!(" (did you mean {o}?)"))
                    .unwrap_or_default()
            ))
        }
        other => Err(format!(
            "unknown rule `{other}`; the rules are: {}",
            KINDS.join(", ")
        )),
    }
}

/// A rule `A|B|C`: the value is one of these strings.
pub fn is_enumeration(rule: &str) -> bool {
    rule.contains('|') && rule.split('|').all(|a| !a.is_empty())
}

fn str_of(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Secret(_) => Err("is a secret; expected a plain value".into()),
        other => Err(format!("must be a string, found {}", other.type_name())),
    }
}

/// A DNS name as Kubernetes ingress hosts need it: lowercase RFC 1123 labels, at least two.
pub fn domain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty; write a domain such as clearml.example.com".into());
    }
    if s.len() > 253 {
        return Err(format!("`{s}` is longer than 253 characters"));
    }
    if s.contains("://") {
        return Err(format!(
            "`{s}` is a URL; write the domain alone, such as clearml.example.com"
        ));
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        // the lowercase form is not a registered secret: not shown when `s` holds one
        let lower = s.to_ascii_lowercase();
        return Err(if crate::secret::redact(s) == s {
            format!("`{s}` has capital letters; write it in lowercase ({lower})")
        } else {
            format!("`{s}` has capital letters; write it in lowercase")
        });
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{s}` is a single label; write a full domain such as {s}.example.com"
        ));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(format!(
                "`{s}` has an empty label (two dots, or a dot at an end)"
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "`{s}`: the label `{label}` is longer than 63 characters"
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "`{s}`: the label `{label}` may hold only letters, digits and `-`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "`{s}`: the label `{label}` may not start or end with `-`"
            ));
        }
    }
    Ok(())
}

/// An email address as the server's HOCON configuration takes it: no quotes or spaces.
pub fn email(s: &str) -> Result<(), String> {
    let Some((local, host)) = s.rsplit_once('@') else {
        return Err(format!(
            "`{s}` is not an email address (no `@`); write one such as admin@example.com"
        ));
    };
    const ALLOWED: &str = ".!#$%&'*+/=?^_`{|}~-";
    if local.is_empty()
        || !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ALLOWED.contains(c))
    {
        return Err(format!(
            "`{s}`: the part before `@` may hold only letters, digits and {ALLOWED}; write the plain address, without quotes"
        ));
    }
    let host = host.to_ascii_lowercase();
    domain(&host).map_err(|e| format!("`{s}`: the part after `@`: {e}"))
}

/// `s` for messages, any `user:password@` of a URL shown as `<redacted>@`: a password in it is
/// not a registered secret.
fn without_userinfo(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://") {
        let authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority].rfind('@') {
            return format!("{scheme}://{REDACTED}@{}", &rest[at + 1..]);
        }
    }
    s.to_string()
}

/// An http or https URL with a host, and no password in it.
pub fn url(s: &str) -> Result<(), String> {
    let shown = without_userinfo(s);
    let s = shown.as_str();
    let parsed = url::Url::parse(&shown.replace(REDACTED, "user")).map_err(|e| {
        format!("`{s}` is not a URL ({e}); write one such as https://api.example.com")
    })?;
    if shown.contains(REDACTED) {
        return Err(format!(
            "`{s}` holds a user and password before `@`: a password there reaches plans and \
             command lines; write the URL without them and give the credential in its own key \
             (for the chart repository, github_token), as {{env: NAME}} or {{file: PATH}}"
        ));
    }
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!(
            "`{s}`: the scheme must be http or https, not {}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    Ok(())
}

/// A TCP port, 1 to 65535.
pub fn port(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(p) if (1..=65535).contains(p) => Ok(*p),
        Value::Int(p) => Err(format!("port {p} is out of range: a port is 1 to 65535")),
        other => Err(format!(
            "a port must be a whole number from 1 to 65535, found {}",
            other.type_name()
        )),
    }
}

/// `{start, end}` with both ports valid and start ≤ end.
pub fn port_range(v: &Value) -> Result<(), String> {
    let Value::Map(m) = v else {
        return Err(format!(
            "a port range must be a map with `start` and `end`, found {}",
            v.type_name()
        ));
    };
    let get = |k: &str| {
        m.get(k)
            .ok_or_else(|| format!("the port range has no `{k}`"))
            .and_then(|p| port(p).map_err(|e| format!("`{k}`: {e}")))
    };
    let (start, end) = (get("start")?, get("end")?);
    if start > end {
        return Err(format!(
            "the port range starts at {start} after it ends at {end}: swap them, start ≤ end"
        ));
    }
    Ok(())
}

/// A Kubernetes quantity such as `32Gi`, `500Mi`, `1G`, or a whole number of bytes.
pub fn size(v: &Value) -> Result<(), String> {
    match v {
        Value::Int(i) if *i > 0 => Ok(()),
        Value::Int(i) => Err(format!("size {i} must be greater than zero")),
        Value::Str(s) => {
            let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &s[digits.len()..];
            const UNITS: [&str; 13] = [
                "", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            ];
            let number_ok = !digits.is_empty()
                && digits
                    .parse::<f64>()
                    .is_ok_and(|n| n > 0.0 && n.is_finite());
            if number_ok && UNITS.contains(&unit) {
                Ok(())
            } else {
                Err(format!(
                    "`{s}` is not a size; write a number with a unit such as 32Gi, 512Mi or 1G"
                ))
            }
        }
        other => Err(format!(
            "a size must be a string such as 32Gi, found {}",
            other.type_name()
        )),
    }
}

/// Every string leaf that still holds an angle-bracket placeholder, as `(path, placeholder)`.
/// Secrets are looked into too; a placeholder inside a longer secret is not shown (the rest of
/// the value could be real).
pub fn placeholders(v: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    v.walk_leaves("", &mut |path, leaf| match leaf {
        Value::Str(s) => {
            if let Some(p) = find_placeholder(s) {
                found.push((path.to_string(), p));
            }
        }
        Value::Secret(s) => {
            if let Some(p) = find_placeholder(s.expose()) {
                let shown = if p == s.expose().trim() {
                    p
                } else {
                    "<…> (inside the secret)".to_string()
                };
                found.push((path.to_string(), shown));
            }
        }
        _ => {}
    });
    found
}

/// Is the live run about to use an example value? Set for live runs, not for dry runs or the
/// sandbox (which rehearse with the examples).
static REFUSE_EXAMPLES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refuse the examples' `…-replace-me` secrets (a live run against a real cluster).
pub fn refuse_examples(on: bool) {
    REFUSE_EXAMPLES.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// The variable that lets a live run use the examples' credentials: for a rehearsal against a
/// throwaway cluster or a test double of one (the project's own live tests set it).
pub const ALLOW_EXAMPLES_VAR: &str = "CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS";

/// Whether [`ALLOW_EXAMPLES_VAR`] is `1`.
pub fn examples_allowed() -> bool {
    std::env::var_os(ALLOW_EXAMPLES_VAR).is_some_and(|v| v == "1")
}

/// A secret that is still the examples' `…-replace-me` value, in a live run: the problem.
pub fn example_secret(v: &Value) -> Option<String> {
    if !REFUSE_EXAMPLES.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    let text = match v {
        Value::Secret(s) => s.expose(),
        Value::Str(s) => s.as_str(),
        _ => return None,
    };
    text.to_ascii_lowercase().ends_with("replace-me").then(|| {
        format!(
            "still holds the example value (…-replace-me): put the real credential in a secrets \
             values file (for a rehearsal on a throwaway cluster: {ALLOW_EXAMPLES_VAR}=1)"
        )
    })
}

/// What to do about a missing key.
pub fn missing_hint(path: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    if crate::secret::is_secret_key(last, &[]) {
        secret_hint(path)
    } else {
        format!("add it to the site values file, or pass --set {path}=VALUE")
    }
}

/// What to do about a missing secret: never `--set`, which every local user can read in the
/// process list, but the environment or a file only you can read.
pub fn secret_hint(path: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    format!(
        "give `{path}` in the site values as `{last}: {{env: VARIABLE}}` or `{last}: {{file: PATH}}`, \
         or in a secrets values file only you can read (chmod 600), rather than --set, which \
         every user of the machine can read in the process list"
    )
}

/// `<SOMETHING>` where SOMETHING is a word of letters, digits, `_`, `-`, `.` or spaces.
fn find_placeholder(s: &str) -> Option<String> {
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        if let Some(end) = after.find('>') {
            let inner = &after[..end];
            if !inner.is_empty()
                && inner.chars().next().is_some_and(|c| c.is_alphabetic())
                && inner
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_-. ".contains(c))
            {
                return Some(format!("<{inner}>"));
            }
        }
        rest = after;
    }
    None
}

/// The message for a placeholder found at `path`.
pub fn placeholder_message(placeholder: &str) -> String {
    if placeholder == REDACTED {
        "holds <redacted>: a secret was put into a string with interpolation; join it with `+` so it stays a secret".into()
    } else {
        format!("still holds the placeholder {placeholder}: replace it with the real value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn domains() {
        assert!(domain("clearml.example.com").is_ok());
        assert!(domain("a-b.example.io").is_ok());
        assert!(domain("localhost").unwrap_err().contains("single label"));
        assert!(
            domain("Example.com")
                .unwrap_err()
                .contains("write it in lowercase (example.com)")
        );
        // a secret's value given as a domain too: its lowercase form, unknown to the
        // redactor, is not shown
        crate::secret::register("Domain-Canary-31.COM");
        let e = domain("Domain-Canary-31.COM").unwrap_err();
        assert!(e.ends_with("write it in lowercase"), "{e}");
        assert!(domain("ex..com").unwrap_err().contains("empty label"));
        assert!(domain("-a.com").unwrap_err().contains("start or end"));
        assert!(domain("https://a.com").unwrap_err().contains("URL"));
        assert!(domain("a_b.com").is_err());
    }

    #[test]
    fn emails() {
        assert!(email("admin@example.com").is_ok());
        assert!(email("first.last+tag@sub.example.com").is_ok());
        assert!(email("no-at-sign").unwrap_err().contains("`@`"));
        assert!(email("\"quoted\"@example.com").is_err());
        assert!(email("a@b").is_err());
    }

    #[test]
    fn urls() {
        assert!(url("https://api.example.com").is_ok());
        assert!(url("http://127.0.0.1:8008/v2.31").is_ok());
        assert!(url("ftp://x.com").unwrap_err().contains("http or https"));
        assert!(url("api.example.com").is_err());
    }

    #[test]
    fn ports_and_sizes() {
        let range = |s, e| {
            Value::Map(BTreeMap::from([
                ("start".into(), Value::Int(s)),
                ("end".into(), Value::Int(e)),
            ]))
        };
        assert!(port_range(&range(30000, 30100)).is_ok());
        assert!(
            port_range(&range(40000, 30000))
                .unwrap_err()
                .contains("start ≤ end")
        );
        assert!(
            port_range(&range(0, 10))
                .unwrap_err()
                .contains("out of range")
        );
        assert!(port_range(&range(1, 70000)).is_err());
        assert!(size(&Value::Str("32Gi".into())).is_ok());
        assert!(size(&Value::Str("1.5G".into())).is_ok());
        assert!(size(&Value::Str("32GB".into())).is_err());
        assert!(size(&Value::Str("Gi".into())).is_err());
        assert!(size(&Value::Int(0)).is_err());
    }

    #[test]
    fn finds_placeholders_with_paths() {
        let v = crate::site::parse_yaml(
            "base_domain: <BASE_DOMAIN>\nsso: {url: \"<KC_URL>/realms/<REALM_NAME>/\"}\nok: \"a < b > c\"\nlist: [\"x\", \"<Y>\"]",
        )
        .unwrap();
        let found = placeholders(&v);
        assert_eq!(
            found,
            vec![
                ("base_domain".to_string(), "<BASE_DOMAIN>".to_string()),
                ("list[1]".to_string(), "<Y>".to_string()),
                ("sso.url".to_string(), "<KC_URL>".to_string()),
            ]
        );
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn secret(text: &str) -> Value {
        Value::Secret(crate::secret::Secret::new(text))
    }

    #[test]
    fn each_rule_kind_accepts_its_values_and_refuses_others() {
        let map = Value::Map(BTreeMap::new());
        let range = Value::Map(BTreeMap::from([
            ("start".into(), Value::Int(5)),
            ("end".into(), Value::Int(5)),
        ]));
        let good: &[(&str, Value)] = &[
            ("domain", s("clearml.example.com")),
            ("email", s("admin@example.com")),
            ("url", s("https://api.example.com")),
            ("port", Value::Int(8080)),
            ("port_range", range),
            ("size", s("32Gi")),
            ("string", s(" x ")),
            ("secret", secret("pw")),
            ("secret", s("pw")),
            ("bool", Value::Bool(false)),
            ("int", Value::Int(0)),
            ("list", Value::List(vec![])),
            ("map", map.clone()),
            ("gpu|cpu", s("cpu")),
        ];
        for (kind, v) in good {
            assert_eq!(check(kind, v), Ok(()), "{kind}");
        }
        let bad: &[(&str, Value, &str)] = &[
            ("domain", s("localhost"), "single label"),
            ("domain", Value::Int(1), "must be a string, found"),
            (
                "domain",
                secret("a.example.com"),
                "is a secret; expected a plain value",
            ),
            ("email", s("nobody"), "no `@`"),
            ("url", s("ftp://x.com"), "http or https"),
            ("port", Value::Int(0), "out of range"),
            ("port_range", Value::Int(1), "must be a map"),
            ("size", s("32GB"), "is not a size"),
            ("string", s("  "), "must not be empty"),
            ("string", Value::Int(1), "must be a string, found"),
            ("secret", secret(""), "must not be empty"),
            ("secret", s(""), "must not be empty"),
            ("secret", Value::Int(1), "must be a string, found"),
            ("bool", s("true"), "must be true or false"),
            ("int", s("1"), "must be a whole number"),
            ("list", map.clone(), "must be a list"),
            ("map", Value::List(vec![]), "must be a map"),
            ("gpu|cpu", s("tpu"), "`tpu` is not one of gpu, cpu"),
            ("gpu|cpu", Value::Int(1), "must be a string, found"),
            (
                "gpus",
                s("gpus"),
                "unknown rule `gpus`; the rules are: domain, email",
            ),
            ("a||b", s("a"), "unknown rule `a||b`"),
        ];
        for (kind, v, want) in bad {
            let err = check(kind, v).unwrap_err();
            assert!(err.contains(want), "{kind}: {err}");
        }
    }

    #[test]
    fn an_enumeration_suggests_only_a_near_alternative() {
        assert_eq!(
            check("gpu|cpu", &s("GPU")).unwrap_err(),
            "`GPU` is not one of gpu, cpu (did you mean gpu?)"
        );
        assert_eq!(
            check("gpu|tpu-large", &s("zzz")).unwrap_err(),
            "`zzz` is not one of gpu, tpu-large"
        );
        // jaro_winkler("aaaa", "aabbba") is exactly 0.8: not near enough (above 0.8 is)
        assert_eq!(
            check("aaaa|zzzz", &s("aabbba")).unwrap_err(),
            "`aabbba` is not one of aaaa, zzzz"
        );
        assert!(is_enumeration("a|b"));
        assert!(!is_enumeration("ab"));
        assert!(!is_enumeration("a||b"));
        assert!(!is_enumeration("|a"));
    }

    #[test]
    fn domain_bounds() {
        let label63 = "a".repeat(63);
        // 253 characters in all: three labels of 63, one of 61, three dots
        let longest = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(domain(&longest), Ok(()));
        let too_long = format!("{longest}c");
        assert!(domain(&too_long).unwrap_err().contains("longer than 253"));
        assert_eq!(domain(&format!("{label63}.com")), Ok(()));
        assert!(
            domain(&format!("{label63}a.com"))
                .unwrap_err()
                .contains("longer than 63")
        );
        assert_eq!(domain("a.b"), Ok(()));
        assert_eq!(domain("web1.example.com"), Ok(()));
        assert_eq!(domain("1-2.example.com"), Ok(()));
        assert!(domain("a-.com").unwrap_err().contains("start or end"));
        assert!(domain("").unwrap_err().contains("must not be empty"));
        assert!(domain("a_b.com").unwrap_err().contains("only letters"));
    }

    #[test]
    fn email_parts() {
        assert!(
            email("@example.com")
                .unwrap_err()
                .contains("the part before `@`")
        );
        assert!(
            email("a b@example.com")
                .unwrap_err()
                .contains("the part before `@`")
        );
        assert_eq!(email("a!b@Example.COM"), Ok(()));
        assert!(email("a@b").unwrap_err().contains("the part after `@`"));
    }

    #[test]
    fn port_and_size_bounds() {
        assert_eq!(port(&Value::Int(1)), Ok(1));
        assert_eq!(port(&Value::Int(65535)), Ok(65535));
        assert!(
            port(&Value::Int(65536))
                .unwrap_err()
                .contains("out of range")
        );
        assert!(port(&s("80")).unwrap_err().contains("whole number"));
        let range = |s, e| {
            Value::Map(BTreeMap::from([
                ("start".into(), Value::Int(s)),
                ("end".into(), Value::Int(e)),
            ]))
        };
        assert_eq!(port_range(&range(5, 5)), Ok(()));
        assert_eq!(port_range(&range(5, 6)), Ok(()));
        assert!(
            port_range(&range(6, 5))
                .unwrap_err()
                .contains("start ≤ end")
        );
        assert_eq!(size(&Value::Int(1)), Ok(()));
        assert!(
            size(&Value::Int(-1))
                .unwrap_err()
                .contains("greater than zero")
        );
        assert_eq!(size(&s("1")), Ok(()));
        assert_eq!(size(&s("512Mi")), Ok(()));
        for bad in ["0", "0Gi", "-1Gi", "1e999", "Gi", "", "1Gb", "1.5.5G"] {
            assert!(
                size(&s(bad)).unwrap_err().contains("is not a size"),
                "{bad}"
            );
        }
        assert!(size(&Value::Bool(true)).unwrap_err().contains("found"));
    }

    #[test]
    fn placeholders_in_secrets_and_their_shape() {
        let v = Value::Map(BTreeMap::from([
            ("whole".into(), secret("<API_SECRET>")),
            ("inside".into(), secret("abc<TOKEN>def")),
            ("plain".into(), secret("no placeholder")),
        ]));
        assert_eq!(
            placeholders(&v),
            vec![
                ("inside".to_string(), "<…> (inside the secret)".to_string()),
                ("whole".to_string(), "<API_SECRET>".to_string()),
            ]
        );
        assert_eq!(
            find_placeholder("<A_B-C.D E>"),
            Some("<A_B-C.D E>".to_string())
        );
        assert_eq!(
            find_placeholder("x <1a> <b/c> <> y <Z>"),
            Some("<Z>".to_string())
        );
        assert_eq!(find_placeholder("<1a>"), None);
        assert_eq!(find_placeholder("<a/b>"), None);
        assert_eq!(find_placeholder("<>"), None);
        assert_eq!(find_placeholder("plain"), None);
    }

    #[test]
    fn messages_say_what_to_do() {
        assert_eq!(
            placeholder_message("<X>"),
            "still holds the placeholder <X>: replace it with the real value"
        );
        assert!(placeholder_message(REDACTED).contains("join it with `+`"));
        let secret = missing_hint("site.dockerhub_token");
        assert!(
            secret
                .contains("`dockerhub_token: {env: VARIABLE}` or `dockerhub_token: {file: PATH}`"),
            "{secret}"
        );
        assert!(secret.contains("give `site.dockerhub_token`"), "{secret}");
        assert_eq!(
            missing_hint("site.base_domain"),
            "add it to the site values file, or pass --set site.base_domain=VALUE"
        );
    }

    /// A live run refuses the examples' `…-replace-me` values; dry runs and the sandbox do not.
    /// (No other unit test checks a value ending in `replace-me`, so flipping the switch here
    /// cannot change another test's outcome.)
    #[test]
    fn example_credentials_are_refused_only_when_asked() {
        assert_eq!(example_secret(&s("example-token-replace-me")), None);
        refuse_examples(true);
        let found = [
            example_secret(&secret("example-token-Replace-Me")),
            example_secret(&s("example-token-replace-me")),
            example_secret(&s("a-real-token")),
            example_secret(&Value::Int(1)),
        ];
        refuse_examples(false);
        assert!(
            found[0]
                .as_deref()
                .is_some_and(|m| m.starts_with("still holds the example value (…-replace-me)")),
            "{found:?}"
        );
        assert_eq!(found[0], found[1]);
        assert_eq!(found[2], None);
        assert_eq!(found[3], None);
    }
}
