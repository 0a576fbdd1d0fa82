//! Secret built-ins. A secret prints as `<redacted>` everywhere; joining it with `+` keeps it
//! secret.

use rhai::plugin::*;

/// What `bcrypt_hash` answers in a dry run.
const PLANNED_HASH: &str = "<planned: a bcrypt hash>";

#[export_module]
pub mod secrets_api {
    use super::PLANNED_HASH;
    use crate::failure::invalid;
    use crate::secret::{Secret, generate_hex};
    use rhai::{Dynamic, EvalAltResult};

    /// Mark a value secret: it shows as `<redacted>` in output, plans, logs and errors, and
    /// reaches helm and APIs only through safe channels. Strings built from it with `+` stay
    /// secret. A secret given a secret is returned as it is.
    ///
    /// # Example
    /// ```rhai
    /// let token = secret("ghp_example");
    /// print(token);   // <redacted>
    /// ```
    #[rhai_fn(return_raw)]
    pub fn secret(value: Dynamic) -> Result<Secret, Box<EvalAltResult>> {
        if let Some(s) = value.clone().try_cast::<Secret>() {
            return Ok(s);
        }
        if value.is_string() || value.is_int() || value.is_float() || value.is_char() {
            return Ok(Secret::new(value.to_string()));
        }
        Err(invalid(
            "secret",
            format!(
                "a secret must be a string or a number, found {}",
                value.type_name()
            ),
        ))
    }

    /// A new random secret: `bytes` bytes from the operating system's RNG, hex-encoded
    /// (16 bytes give 32 hex digits, as the ClearML docs suggest for internal credentials).
    ///
    /// # Example
    /// ```rhai
    /// let api_secret = generate_secret(16);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn generate_secret(bytes: i64) -> Result<Secret, Box<EvalAltResult>> {
        if !(1..=1024).contains(&bytes) {
            return Err(invalid(
                "generate_secret",
                format!("bytes must be 1 to 1024, not {bytes}"),
            ));
        }
        generate_hex(bytes as usize).map(Secret::new).map_err(|e| {
            invalid(
                "generate_secret",
                format!("the OS random source failed: {e}"),
            )
        })
    }

    /// A password for the server's fixed users with `pass_hashed: true`: base64 of its bcrypt
    /// hash (cost 12, `$2b$`), as a secret. In a dry run (and the silent plan pass before a
    /// live run) the hash is planned, not computed: a plan shows it as `<redacted>` either way,
    /// and each hash then costs one bcrypt per run.
    ///
    /// # Example
    /// ```rhai
    /// let user = site.fixed_users[0];
    /// let hashed = bcrypt_hash(user.password);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn bcrypt_hash(password: Dynamic) -> Result<Secret, Box<EvalAltResult>> {
        bcrypt_reuse(password, Dynamic::UNIT)
    }

    /// Like `bcrypt_hash`, but answers `stored` (base64 of a bcrypt hash, as `bcrypt_hash` gives)
    /// when it is the hash of this password: an unchanged password keeps its hash across runs,
    /// so a re-run does not change the configuration. Checking costs one bcrypt, as hashing does.
    ///
    /// # Example
    /// ```rhai
    /// let user = site.fixed_users[0];
    /// let stored = #{};  // the hashes kept from the last run, by user name
    /// let hashed = bcrypt_hash(user.password, get(stored, user.username, ()));
    /// ```
    #[rhai_fn(name = "bcrypt_hash", return_raw)]
    pub fn bcrypt_reuse(password: Dynamic, stored: Dynamic) -> Result<Secret, Box<EvalAltResult>> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let plain = match password.clone().try_cast::<Secret>() {
            Some(s) => s.expose().to_string(),
            None if password.is_string() => password.to_string(),
            None => {
                return Err(invalid(
                    "bcrypt_hash",
                    format!(
                        "expected a string or a secret, not {}",
                        password.type_name()
                    ),
                ));
            }
        };
        if crate::runtime::with(|rt| rt.mode()) == crate::action::Mode::DryRun
            && !crate::chartdiff::showing()
        {
            return Ok(Secret::derived(PLANNED_HASH, true));
        }
        let stored = match stored.clone().try_cast::<Secret>() {
            Some(s) => Some(s.expose().to_string()),
            None if stored.is_string() => Some(stored.to_string()),
            None => None,
        };
        if let Some(stored) = stored
            && let Ok(hash) = b64.decode(stored.trim())
            && let Ok(hash) = String::from_utf8(hash)
            && bcrypt::verify(&plain, &hash).unwrap_or(false)
        {
            return Ok(Secret::new(stored.trim()));
        }
        let hash = bcrypt::hash_with_result(plain, 12)
            .map_err(|e| invalid("bcrypt_hash", e.to_string()))?
            .format_for_version(bcrypt::Version::TwoB);
        Ok(Secret::new(b64.encode(hash)))
    }

    /// Is `value` a secret?
    ///
    /// # Example
    /// ```rhai
    /// is_secret(site.dockerhub_token)   // true: the key name says it is a token
    /// ```
    pub fn is_secret(value: Dynamic) -> bool {
        value.is::<Secret>()
    }

    /// A secret followed by a string: the result is a secret.
    ///
    /// # Example
    /// ```rhai
    /// let auth = secret("user") + ":pass";   // a secret
    /// ```
    #[rhai_fn(name = "+")]
    pub fn secret_plus_str(a: Secret, b: &str) -> Secret {
        let covered = a.covered();
        Secret::derived(format!("{}{b}", a.expose()), covered)
    }

    /// A string followed by a secret: the result is a secret.
    ///
    /// # Example
    /// ```rhai
    /// let header = "Bearer " + secret("tok");   // a secret
    /// ```
    #[rhai_fn(name = "+")]
    pub fn str_plus_secret(a: &str, b: Secret) -> Secret {
        let covered = b.covered();
        Secret::derived(format!("{a}{}", b.expose()), covered)
    }

    /// Two secrets joined: the result is a secret.
    ///
    /// # Example
    /// ```rhai
    /// let both = secret("key") + secret("value");
    /// ```
    #[rhai_fn(name = "+")]
    pub fn secret_plus_secret(a: Secret, b: Secret) -> Secret {
        let covered = a.covered() && b.covered();
        Secret::derived(format!("{}{}", a.expose(), b.expose()), covered)
    }

    /// Join a list of strings and secrets into one, in a single pass: a secret when any part is
    /// one. For text built from many parts, where `+` in a loop would copy the growing text
    /// again at each step.
    ///
    /// # Example
    /// ```rhai
    /// let line = concat(["password: ", secret("hunter2!"), "\n"]);   // a secret
    /// ```
    #[rhai_fn(return_raw)]
    pub fn concat(parts: rhai::Array) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut out = String::new();
        let mut secret = false;
        let mut covered = true;
        for (i, p) in parts.into_iter().enumerate() {
            if let Some(s) = p.clone().try_cast::<Secret>() {
                secret = true;
                covered &= s.covered();
                out.push_str(s.expose());
            } else if p.is_string() || p.is_int() || p.is_float() || p.is_char() || p.is_bool() {
                out.push_str(&p.to_string());
            } else {
                return Err(invalid(
                    "concat",
                    format!(
                        "part {i} is {}: only strings, numbers and secrets are joined",
                        p.type_name()
                    ),
                ));
            }
        }
        Ok(if secret {
            Dynamic::from(Secret::derived(out, covered))
        } else {
            out.into()
        })
    }

    /// Do two secrets hold the same value?
    ///
    /// # Example
    /// ```rhai
    /// secret("a1b2") == secret("a1b2")   // true
    /// ```
    #[rhai_fn(name = "==")]
    pub fn secret_eq(a: Secret, b: Secret) -> bool {
        a == b
    }

    /// Do two secrets hold different values?
    ///
    /// # Example
    /// ```rhai
    /// secret("a1b2") != secret("c3d4")   // true
    /// ```
    #[rhai_fn(name = "!=")]
    pub fn secret_ne(a: Secret, b: Secret) -> bool {
        a != b
    }

    /// Is the secret empty?
    ///
    /// # Example
    /// ```rhai
    /// if site.dockerhub_token.is_empty() { fail("dockerhub_token is empty"); }
    /// ```
    #[rhai_fn(name = "is_empty", pure)]
    pub fn secret_is_empty(s: &mut Secret) -> bool {
        s.is_empty()
    }

    /// The length of the secret, in characters (the value itself stays hidden).
    ///
    /// # Example
    /// ```rhai
    /// if site.dockerhub_token.len() < 20 { fail("the DockerHub token looks too short"); }
    /// ```
    #[rhai_fn(name = "len", pure)]
    pub fn secret_len(s: &mut Secret) -> i64 {
        s.len() as i64
    }

    /// A secret shown as text: always `<redacted>`.
    ///
    /// # Example
    /// ```rhai
    /// print(secret("x1y2"));   // <redacted>
    /// ```
    #[rhai_fn(name = "to_string", pure)]
    pub fn secret_to_string(s: &mut Secret) -> String {
        s.to_string()
    }

    /// A secret in debug output: always `<redacted>`.
    ///
    /// # Example
    /// ```rhai
    /// debug(secret("x1y2"));   // <redacted>
    /// ```
    #[rhai_fn(name = "to_debug", pure)]
    pub fn secret_to_debug(s: &mut Secret) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use rhai::Dynamic;

    use super::PLANNED_HASH;
    use super::secrets_api::*;
    use crate::action::{Executor, Mode, Query};
    use crate::secret::{REDACTED, Secret, redact};
    use crate::value::Value;

    /// The message of a built-in's failure.
    fn message(e: &rhai::EvalAltResult) -> String {
        match e {
            rhai::EvalAltResult::ErrorRuntime(d, _) => d
                .clone()
                .try_cast::<crate::failure::Failure>()
                .expect("a Failure")
                .to_string(),
            other => other.to_string(),
        }
    }

    fn text(s: &str) -> Dynamic {
        Dynamic::from(s.to_string())
    }

    #[test]
    fn a_secret_is_made_of_a_string_or_a_number_and_a_secret_stays_itself() {
        assert_eq!(secret(text("s3cret-made")).unwrap().expose(), "s3cret-made");
        assert_eq!(secret(Dynamic::from(4242_i64)).unwrap().expose(), "4242");
        assert_eq!(secret(Dynamic::from(1.5_f64)).unwrap().expose(), "1.5");
        assert_eq!(secret(Dynamic::from('x')).unwrap().expose(), "x");
        let s = Secret::new("already-a-secret");
        assert_eq!(secret(Dynamic::from(s.clone())).unwrap(), s);
        let err = message(&secret(Dynamic::from(true)).unwrap_err());
        assert!(
            err.contains("a secret must be a string or a number, found bool"),
            "{err}"
        );
        assert!(is_secret(Dynamic::from(s)));
        assert!(!is_secret(text("plain")));
    }

    #[test]
    fn generated_secrets_are_hex_of_the_bytes_asked() {
        let s = generate_secret(16).unwrap();
        assert_eq!(s.len(), 32);
        assert!(s.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(generate_secret(1).unwrap().len(), 2);
        assert_eq!(generate_secret(1024).unwrap().len(), 2048);
        for bad in [0, 1025, -1] {
            let err = message(&generate_secret(bad).unwrap_err());
            assert!(
                err.contains(&format!("bytes must be 1 to 1024, not {bad}")),
                "{err}"
            );
        }
    }

    /// Joined with `+` or `concat`, the result is a secret with both parts; a part too short to
    /// be masked alone makes the whole value registered with the redactor.
    #[test]
    fn joined_secrets_stay_secret_and_masked_whole() {
        let long = Secret::new("join-long-part-7");
        assert_eq!(
            secret_plus_str(long.clone(), "-x").expose(),
            "join-long-part-7-x"
        );
        assert_eq!(
            str_plus_secret("x-", long.clone()).expose(),
            "x-join-long-part-7"
        );
        // "q7z" is under the redactor's bound: the joined value is registered as a whole
        let short = Secret::new("q7z");
        assert!(long.covered() && !short.covered());
        let both = secret_plus_secret(long.clone(), short.clone());
        assert_eq!(both.expose(), "join-long-part-7q7z");
        assert_eq!(redact("[join-long-part-7q7z]"), format!("[{REDACTED}]"));
        let parts = vec![
            text("a:"),
            Dynamic::from(Secret::new("join-long-part-8")),
            Dynamic::from(Secret::new("w4v")),
            Dynamic::from(1_i64),
            Dynamic::from(true),
        ];
        let joined = concat(parts)
            .unwrap()
            .try_cast::<Secret>()
            .expect("a secret");
        assert_eq!(joined.expose(), "a:join-long-part-8w4v1true");
        assert_eq!(
            redact("[a:join-long-part-8w4v1true]"),
            format!("[{REDACTED}]")
        );
        let plain = concat(vec![text("a"), Dynamic::from(2.5_f64), Dynamic::from('c')]).unwrap();
        assert_eq!(plain.into_string().unwrap(), "a2.5c");
        let err = message(&concat(vec![text("a"), Dynamic::UNIT]).unwrap_err());
        assert!(err.contains("part 1 is ()"), "{err}");
    }

    #[test]
    fn secrets_compare_measure_and_show_as_redacted() {
        let (mut a, b, c) = (
            Secret::new("cmp-secret-1"),
            Secret::new("cmp-secret-1"),
            Secret::new("cmp-secret-2"),
        );
        assert!(secret_eq(a.clone(), b.clone()) && !secret_eq(a.clone(), c.clone()));
        assert!(secret_ne(a.clone(), c.clone()) && !secret_ne(a.clone(), b.clone()));
        assert_eq!(secret_len(&mut a), 12);
        assert!(!secret_is_empty(&mut a));
        assert!(secret_is_empty(&mut Secret::new("")));
        assert_eq!(secret_to_string(&mut a), REDACTED);
        assert_eq!(secret_to_debug(&mut a), REDACTED);
    }

    /// A dry run plans the hash; a bad password is refused first.
    #[test]
    fn a_dry_run_plans_the_bcrypt_hash() {
        assert_eq!(bcrypt_hash(text("pw-dry")).unwrap().expose(), PLANNED_HASH);
        let s = Dynamic::from(Secret::new("pw-dry-secret"));
        assert_eq!(bcrypt_hash(s).unwrap().expose(), PLANNED_HASH);
        let err = message(&bcrypt_hash(Dynamic::from(42_i64)).unwrap_err());
        assert!(
            err.contains("expected a string or a secret, not i64"),
            "{err}"
        );
    }

    /// An executor that only says the run is live.
    struct Live;
    impl Executor for Live {
        fn mode(&self) -> Mode {
            Mode::Live
        }
        fn execute(&self, _: &crate::action::Action) -> Result<Value, String> {
            Err("no actions in this test".into())
        }
        fn query(&self, _: &Query) -> Result<Value, String> {
            Err("no queries in this test".into())
        }
    }

    /// A live run hashes (base64 of `$2b$12$…`), and keeps a stored hash of the same password.
    #[test]
    fn a_live_run_hashes_and_keeps_a_stored_hash_of_the_same_password() {
        use base64::Engine as _;
        Rc::new(crate::runtime::Runtime::new(
            Box::new(Live),
            crate::site::Site::default(),
            ".".into(),
            Default::default(),
        ))
        .install();
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = bcrypt_hash(text("pw-live-1")).unwrap();
        let hash = String::from_utf8(b64.decode(hashed.expose()).unwrap()).unwrap();
        assert!(hash.starts_with("$2b$12$"), "{hash}");
        assert!(bcrypt::verify("pw-live-1", &hash).unwrap());
        // the stored hash, as a string or a secret, is kept for the same password
        let kept = bcrypt_reuse(text("pw-live-1"), text(hashed.expose())).unwrap();
        assert_eq!(kept, hashed);
        let kept = bcrypt_reuse(
            Dynamic::from(Secret::new("pw-live-1")),
            Dynamic::from(hashed.clone()),
        );
        assert_eq!(kept.unwrap(), hashed);
        // and replaced for another
        let other = bcrypt_reuse(text("pw-live-2"), text(hashed.expose())).unwrap();
        assert_ne!(other, hashed);
        let hash = String::from_utf8(b64.decode(other.expose()).unwrap()).unwrap();
        assert!(bcrypt::verify("pw-live-2", &hash).unwrap());
    }
}
