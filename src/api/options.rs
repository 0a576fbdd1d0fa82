//! Options maps of built-ins, decoded field by field; a key the built-in does not know is an
//! error that names the closest known key, at the call's line and column.

use rhai::{Dynamic, EvalAltResult, Map};

use crate::failure::invalid;
use crate::secret::Secret;
use crate::value::Value;

pub struct Opts {
    builtin: &'static str,
    map: Map,
    known: Vec<&'static str>,
}

type R<T> = Result<T, Box<EvalAltResult>>;

impl Opts {
    pub fn new(builtin: &'static str, map: Map) -> Opts {
        Opts {
            builtin,
            map,
            known: Vec::new(),
        }
    }

    fn take(&mut self, key: &'static str) -> Option<Dynamic> {
        self.known.push(key);
        self.map.remove(key).filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, want: &str, got: &Dynamic) -> Box<EvalAltResult> {
        invalid(
            self.builtin,
            format!("option `{key}` must be {want}, not {}", got.type_name()),
        )
    }

    pub fn string(&mut self, key: &'static str) -> R<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(self.wrong(key, "a string", &v)),
        }
    }

    pub fn bool(&mut self, key: &'static str) -> R<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .map_err(|_| self.wrong(key, "true or false", &v)),
        }
    }

    pub fn strings(&mut self, key: &'static str) -> R<Vec<String>> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(v) if v.is_string() => Ok(vec![v.to_string()]),
            Some(v) if v.is_array() => {
                let arr = v.clone().into_array().unwrap_or_default();
                arr.iter()
                    .map(|i| {
                        if i.is_string() {
                            Ok(i.to_string())
                        } else {
                            Err(self.wrong(key, "a list of strings", &v))
                        }
                    })
                    .collect()
            }
            Some(v) => Err(self.wrong(key, "a list of strings", &v)),
        }
    }

    /// Any data value (maps, lists, scalars, secrets).
    pub fn value(&mut self, key: &'static str) -> R<Option<Value>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => Value::from_dynamic(&v)
                .map(Some)
                .map_err(|e| invalid(self.builtin, format!("option `{key}`: {e}"))),
        }
    }

    /// A string or a secret, kept as a secret.
    pub fn secret(&mut self, key: &'static str) -> R<Option<Secret>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match v.clone().try_cast::<Secret>() {
                Some(s) => Ok(Some(s)),
                None if v.is_string() => Ok(Some(Secret::new(v.to_string()))),
                None => Err(self.wrong(key, "a string or a secret", &v)),
            },
        }
    }

    /// A map of options of its own (read with another `Opts`).
    pub fn map(&mut self, key: &'static str) -> R<Option<Map>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) if v.is_map() => Ok(v.try_cast::<Map>()),
            Some(v) => Err(self.wrong(key, "a map", &v)),
        }
    }

    /// Every key given must be one the built-in took.
    pub fn finish(self) -> R<()> {
        if let Some(key) = self.map.keys().next() {
            let known: Vec<String> = self.known.iter().map(|k| k.to_string()).collect();
            let hint = crate::check::suggest(key, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; the options are: {}", known.join(", ")));
            return Err(invalid(
                self.builtin,
                format!("unknown option `{key}`{hint}"),
            ));
        }
        Ok(())
    }
}

/// A registry login's options: `username` and `password` (both required) and `plain_http`. A
/// secret username is refused: helm takes it on its command line.
pub fn registry_login(builtin: &'static str, opts: Map) -> R<(Value, Secret, bool)> {
    let mut o = Opts::new(builtin, opts);
    let username = o.value("username")?;
    let password = o.secret("password")?;
    let plain_http = o.bool("plain_http")?.unwrap_or(false);
    o.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(invalid(
            builtin,
            "both `username` and `password` are required",
        ));
    };
    if matches!(username, Value::Secret(_)) {
        return Err(invalid(
            builtin,
            "the username is a secret, and helm takes it on its command line: pass a plain username",
        ));
    }
    Ok((username, password, plain_http))
}

/// A Kubernetes object name (RFC 1123 label): lowercase letters, digits and `-`.
pub fn check_name(builtin: &str, what: &str, name: &str, max: usize) -> R<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            builtin,
            format!(
                "{what} `{name}` is not valid: use at most {max} lowercase letters, digits and `-`, starting and ending with a letter or digit"
            ),
        ))
    }
}

/// A Go duration as helm takes it: `300s`, `10m`, `1h30m`.
pub fn check_duration(builtin: &str, d: &str) -> R<()> {
    let mut rest = d;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let unit = &rest[digits..unit_end];
        if digits == 0 || !["h", "m", "s", "ms"].contains(&unit) {
            return Err(invalid(
                builtin,
                format!("timeout `{d}` is not a duration; write one such as 300s, 10m or 1h30m"),
            ));
        }
        parts += 1;
        rest = &rest[unit_end..];
    }
    if parts == 0 {
        return Err(invalid(builtin, "timeout is empty; write one such as 10m"));
    }
    Ok(())
}
