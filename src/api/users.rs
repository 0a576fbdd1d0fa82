//! Built-ins for a site's fixed users (`fixed_users`, simple login): their checks and their
//! `apiserver.conf` text, each one pass in Rust. A site can list a thousand users, and a script
//! loop over them costs 10–20 µs a user (each `get`, `hocon_quote` and array literal is a
//! call); the site is read by reference, the list is not copied.

use rhai::plugin::*;

/// The keys of a fixed user the built-ins below read (the site-key check accepts them under
/// `fixed_users`).
pub const USER_KEYS: &[&str] = &["username", "password", "name", "admin"];

/// A string or a secret: what a fixed user's text fields hold.
fn is_text(v: &Dynamic) -> bool {
    v.is_string() || v.is::<crate::secret::Secret>()
}

#[export_module]
pub mod users_api {
    use super::is_text;
    use crate::api::queues::{field, problem, shown, with_list};
    use crate::failure::invalid;
    use crate::secret::Secret;
    use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};

    /// The problems of the site's `fixed_users`, as `validate` takes them (`#{path, message}`,
    /// each naming the user's key path, so the file and line): a username listed twice (these
    /// first), a user that is no map, one without a username or password, a `username`, `name`
    /// or `password` that is no text, an `admin` that is no boolean. A missing list has none
    /// (the rule `list?` checks its type).
    ///
    /// # Example
    /// ```rhai
    /// let problems = fixed_user_problems(site);
    /// validate(site, #{ fixed_users: "list?" }, problems);
    /// ```
    #[rhai_fn(pure)]
    pub fn fixed_user_problems(ctx: NativeCallContext, site: &mut Map) -> Array {
        with_list(site, "fixed_users", |users| {
            let mut twice = Vec::new();
            let mut each = Vec::new();
            let mut seen = std::collections::HashSet::with_capacity(users.len());
            for (i, u) in users.iter().enumerate() {
                let Some(u) = u.read_lock::<Map>() else {
                    each.push(problem(
                        format!("fixed_users[{i}]"),
                        "must be a map with username, password, name and admin",
                    ));
                    continue;
                };
                let username = field(&u, "username");
                // the username as the messages show it (a secret masked)
                let name = username.map(|n| shown(&ctx, n)).unwrap_or_default();
                if name.is_empty() {
                    each.push(problem(format!("fixed_users[{i}]"), "has no username"));
                } else if !seen.insert(name.clone()) {
                    twice.push(problem(
                        format!("fixed_users[{i}].username"),
                        format!(
                            "\"{name}\" is listed twice: the server refuses to start with duplicate fixed users"
                        ),
                    ));
                }
                if field(&u, "password").is_none() {
                    each.push(problem(
                        format!("fixed_users[{i}]"),
                        format!("the fixed user \"{name}\" has no password"),
                    ));
                }
                for key in ["username", "name", "password"] {
                    if field(&u, key).is_some_and(|v| !is_text(v)) {
                        each.push(problem(
                            format!("fixed_users[{i}].{key}"),
                            "must be text: quote it",
                        ));
                    }
                }
                if field(&u, "admin").is_some_and(|v| !v.is_bool()) {
                    each.push(problem(
                        format!("fixed_users[{i}].admin"),
                        "must be true or false",
                    ));
                }
            }
            twice.extend(each);
            twice
        })
    }

    /// Each of the site's fixed users' passwords as the site gives it, by username (as
    /// `${username}` shows it; a later user of the same name wins). Users without a username or
    /// password are left out (`fixed_user_problems` reports them).
    ///
    /// # Example
    /// ```rhai
    /// let passwords = fixed_user_passwords_given(site);
    /// ```
    #[rhai_fn(pure)]
    pub fn fixed_user_passwords_given(ctx: NativeCallContext, site: &mut Map) -> Map {
        with_list(site, "fixed_users", |users| {
            let mut out = Map::new();
            for u in users {
                let Some(u) = u.read_lock::<Map>() else {
                    continue;
                };
                if let (Some(name), Some(password)) = (field(&u, "username"), field(&u, "password"))
                {
                    out.insert(shown(&ctx, name).into(), password.clone());
                }
            }
            out
        })
    }

    /// The `apiserver.conf` HOCON of the site's fixed users (simple login), or `()` without
    /// any. `passwords` holds each user's password as the configuration takes it, by username
    /// (`control_plane::fixed_user_passwords`); the text's `pass_hashed` is the site's
    /// `fixed_users_pass_hashed`. A user's `name` defaults to its username, `admin` to false. A
    /// secret when any part is one.
    ///
    /// # Example
    /// ```rhai
    /// let conf = fixed_users_hocon(site, #{ alice: secret("hunter2!") });
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn fixed_users_hocon(
        ctx: NativeCallContext,
        site: &mut Map,
        passwords: Map,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        const B: &str = "fixed_users_hocon";
        let hashed = match crate::api::at_path(site, "fixed_users_pass_hashed", |v| {
            v.filter(|v| !v.is_unit()).map(|v| v.as_bool())
        }) {
            None => false,
            Some(Ok(b)) => b,
            Some(Err(_)) => {
                return Err(invalid(
                    B,
                    "`fixed_users_pass_hashed` must be true or false",
                ));
            }
        };
        with_list(site, "fixed_users", |users| {
            if users.is_empty() {
                return Ok(Dynamic::UNIT);
            }
            let mut out = String::with_capacity(64 + users.len() * 160);
            out.push_str("auth {\n  fixed_users {\n    enabled: true\n    pass_hashed: ");
            out.push_str(if hashed { "true" } else { "false" });
            out.push_str("\n    users: [\n");
            // a secret when any part is one; covered while every secret part is
            let (mut secret, mut covered) = (false, true);
            let mut quote = |out: &mut String, v: &Dynamic, what: &dyn Fn() -> String| {
                match crate::api::values::hocon_quote_into(out, v) {
                    Ok(None) => Ok(()),
                    Ok(Some(c)) => {
                        secret = true;
                        covered &= c;
                        Ok(())
                    }
                    Err(e) => Err(invalid(B, format!("{}: {e}", what()))),
                }
            };
            for (i, u) in users.iter().enumerate() {
                let Some(u) = u.read_lock::<Map>() else {
                    return Err(invalid(B, format!("`fixed_users[{i}]` is no map")));
                };
                let Some(username) = field(&u, "username") else {
                    return Err(invalid(B, format!("`fixed_users[{i}]` has no username")));
                };
                let name = shown(&ctx, username);
                let Some(password) = passwords.get(name.as_str()) else {
                    return Err(invalid(
                        B,
                        format!("no password given for the fixed user \"{name}\""),
                    ));
                };
                let admin = match field(&u, "admin") {
                    None => false,
                    Some(a) => a.as_bool().map_err(|_| {
                        invalid(B, format!("`fixed_users[{i}].admin` must be true or false"))
                    })?,
                };
                out.push_str("      {\n        username: ");
                quote(&mut out, username, &|| {
                    format!("`fixed_users[{i}].username`")
                })?;
                out.push_str("\n        password: ");
                quote(&mut out, password, &|| {
                    format!("the password of \"{name}\"")
                })?;
                out.push_str("\n        name: ");
                let display = field(&u, "name").unwrap_or(username);
                quote(&mut out, display, &|| format!("`fixed_users[{i}].name`"))?;
                out.push_str("\n        admin: ");
                out.push_str(if admin { "true" } else { "false" });
                out.push_str("\n      },\n");
            }
            out.push_str("    ]\n  }\n}\n");
            Ok(if secret {
                Dynamic::from(Secret::derived(out, covered))
            } else {
                out.into()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::secret::Secret;
    use rhai::{Dynamic, Engine, Map};

    fn eval(script: &str) -> Result<Dynamic, String> {
        let mut engine = Engine::new();
        crate::api::register(&mut engine);
        engine.eval::<Dynamic>(script).map_err(|e| match *e {
            rhai::EvalAltResult::ErrorRuntime(d, _) if d.is::<crate::failure::Failure>() => {
                d.cast::<crate::failure::Failure>().to_string()
            }
            e => e.to_string(),
        })
    }

    /// Each problem as `path: message`.
    fn problems(users: &str) -> Vec<String> {
        let found = eval(&format!("fixed_user_problems(#{{ fixed_users: {users} }})")).unwrap();
        found
            .cast::<rhai::Array>()
            .into_iter()
            .map(|p| {
                let p = p.cast::<Map>();
                format!("{}: {}", p["path"], p["message"])
            })
            .collect()
    }

    #[test]
    fn duplicates_come_first_then_each_users_own_problems_in_order() {
        let found = problems(
            r#"[#{ username: "ann", password: "pw-1" }, 7, #{ password: "pw-2" },
                #{ username: "ann", password: "pw-3" }, #{ username: "bob", admin: "yes" },
                #{ username: 12, password: #{}, name: [] }]"#,
        );
        assert_eq!(
            found,
            [
                "fixed_users[3].username: \"ann\" is listed twice: the server refuses to start with duplicate fixed users",
                "fixed_users[1]: must be a map with username, password, name and admin",
                "fixed_users[2]: has no username",
                "fixed_users[4]: the fixed user \"bob\" has no password",
                "fixed_users[4].admin: must be true or false",
                "fixed_users[5].username: must be text: quote it",
                "fixed_users[5].name: must be text: quote it",
                "fixed_users[5].password: must be text: quote it",
            ]
        );
    }

    #[test]
    fn a_list_without_problems_and_a_missing_list_have_none() {
        let ok = r#"[#{ username: "ann", password: secret("pw-ann-1"), name: "Ann", admin: true },
                     #{ username: secret("bob-the-user"), password: "pw-bob-1" }]"#;
        assert!(problems(ok).is_empty());
        assert!(problems("()").is_empty());
        assert!(problems("\"not a list\"").is_empty());
    }

    #[test]
    fn a_secret_username_is_never_shown() {
        let found = problems(r#"[#{ username: secret("hidden-user-1") }]"#);
        assert_eq!(found.len(), 1);
        assert!(!found[0].contains("hidden-user-1"), "{found:?}");
    }

    #[test]
    fn the_given_passwords_by_username_leave_out_incomplete_users() {
        let given = eval(
            r#"fixed_user_passwords_given(#{ fixed_users: [
                   #{ username: "ann", password: secret("pw-ann-0001") }, #{ username: "bob" },
                   #{ password: "pw-nobody" }, 3, #{ username: "cy", password: "pw-cy-1" },
                   #{ username: "cy", password: "pw-cy-2" }] })"#,
        )
        .unwrap()
        .cast::<Map>();
        let keys: Vec<_> = given.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["ann", "cy"]);
        assert_eq!(
            given["ann"].clone().cast::<Secret>().expose(),
            "pw-ann-0001"
        );
        assert_eq!(given["cy"].to_string(), "pw-cy-2", "the later one wins");
        assert!(
            eval("fixed_user_passwords_given(#{})")
                .unwrap()
                .cast::<Map>()
                .is_empty()
        );
    }

    #[test]
    fn the_conf_is_the_hocon_the_server_reads() {
        let conf = eval(
            r#"let site = #{ fixed_users: [
                   #{ username: "ann", password: "x", name: "Ann \"A\" Lee", admin: true },
                   #{ username: "b\\o\nb", password: "x" }] };
               fixed_users_hocon(site, #{ ann: "pw\"1", "b\\o\nb": "pw2" })"#,
        )
        .unwrap();
        assert!(conf.is_string(), "no secret part: plain text");
        assert_eq!(
            conf.to_string(),
            "auth {\n  fixed_users {\n    enabled: true\n    pass_hashed: false\n    users: [\n      \
             {\n        username: \"ann\"\n        password: \"pw\\\"1\"\n        name: \"Ann \\\"A\\\" Lee\"\n        admin: true\n      },\n      \
             {\n        username: \"b\\\\o\\nb\"\n        password: \"pw2\"\n        name: \"b\\\\o\\nb\"\n        admin: false\n      },\n    \
             ]\n  }\n}\n"
        );
        let hashed = eval(
            r#"fixed_users_hocon(#{ fixed_users_pass_hashed: true, fixed_users: [#{ username: "ann" }] },
                                 #{ ann: "aGFzaA==" })"#,
        )
        .unwrap();
        assert!(hashed.to_string().contains("pass_hashed: true\n"));
        assert!(eval("fixed_users_hocon(#{}, #{})").unwrap().is_unit());
        assert!(
            eval("fixed_users_hocon(#{ fixed_users: [] }, #{})")
                .unwrap()
                .is_unit()
        );
    }

    #[test]
    fn a_secret_part_makes_the_conf_a_secret_registered_only_when_quoting_changed_it() {
        let conf = eval(
            r#"fixed_users_hocon(#{ fixed_users: [#{ username: "ann" }, #{ username: "bob" }] },
                                 #{ ann: secret("plain-pw-0815"), bob: "not-secret" })"#,
        )
        .unwrap()
        .try_cast::<Secret>()
        .expect("a secret");
        assert!(conf.expose().contains("password: \"plain-pw-0815\"\n"));
        assert!(conf.covered(), "the leaf masks it as it is");
        assert!(
            !crate::secret::is_registered(conf.expose()),
            "not registered whole"
        );
        let quoted = eval(
            r#"fixed_users_hocon(#{ fixed_users: [#{ username: "ann" }, #{ username: "bob" }] },
                                 #{ ann: secret("plain-pw-0815"), bob: secret("quo\"ted-pw-77") })"#,
        )
        .unwrap()
        .try_cast::<Secret>()
        .expect("a secret");
        // the escaped form is no leaf: the text is registered whole
        assert!(crate::secret::is_registered(quoted.expose()));
    }

    #[test]
    fn a_missing_password_or_bad_field_is_an_error_naming_it() {
        let e = eval(r#"fixed_users_hocon(#{ fixed_users: [#{ username: "ann" }] }, #{})"#)
            .unwrap_err();
        assert!(
            e.contains("no password given for the fixed user \"ann\""),
            "{e}"
        );
        let e = eval(
            r#"fixed_users_hocon(#{ fixed_users: [#{ username: "ann", admin: 1 }] }, #{ ann: "p" })"#,
        )
        .unwrap_err();
        assert!(
            e.contains("`fixed_users[0].admin` must be true or false"),
            "{e}"
        );
        let e = eval(r#"fixed_users_hocon(#{ fixed_users: [#{ username: 5 }] }, #{ "5": "p" })"#)
            .unwrap_err();
        assert!(
            e.contains("`fixed_users[0].username`: expected a string"),
            "{e}"
        );
        let e =
            eval(r#"fixed_users_hocon(#{ fixed_users_pass_hashed: "yes", fixed_users: [] }, #{})"#)
                .unwrap_err();
        assert!(
            e.contains("`fixed_users_pass_hashed` must be true or false"),
            "{e}"
        );
    }
}
