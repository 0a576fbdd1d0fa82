//! `--set`, `--set-string`, `--set-file` and `--set-json`, parsed the way helm parses them
//! (helm's `pkg/strvals`): `a=1,b=2` sets two keys; `\` takes the next character literally
//! (`a\.b=1` is the key `a.b`, `x=a\,b` the value `a,b`); `a={x,y}` is a list; `a[0].b=1` and
//! `a[1][0]=x` index lists, padding them with nulls.
//!
//! Values of `--set` are typed as helm types them: `true`/`false` (any case) a bool, `null` a
//! null, an integer without a leading zero an int (`00123` stays the string `"00123"`), anything
//! else a string. `--set-string` keeps every value a string, `--set-json` reads each as JSON, and
//! `--set-file` reads each as the path of a file whose text is the value.

use std::collections::BTreeMap;

use crate::value::Value;

/// The most a list index may be, as in helm: a typo must not allocate gigabytes.
const MAX_INDEX: usize = 65536;

/// How deep a key may nest (`a.b[0].c` is 4): as deep as a values file may (its parser's
/// limit), and far from the stack's.
const MAX_DEPTH: usize = 128;

/// How the values of one flag are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--set`
    Typed,
    /// `--set-string`
    Str,
    /// `--set-json`
    Json,
    /// `--set-file`
    File,
}

impl Mode {
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Typed => "--set",
            Mode::Str => "--set-string",
            Mode::Json => "--set-json",
            Mode::File => "--set-file",
        }
    }
}

/// Apply one flag's argument to `root` (a map). `read_file` gives the value of a `--set-file`
/// path. Answers the key path of every value set, for locations in messages.
pub fn apply(
    root: &mut Value,
    spec: &str,
    mode: Mode,
    read_file: &dyn Fn(&str) -> Result<Value, String>,
) -> Result<Vec<String>, String> {
    if !matches!(root, Value::Map(_)) {
        *root = Value::Map(BTreeMap::new());
    }
    let mut p = Parser {
        s: spec,
        pos: 0,
        mode,
        read_file,
        set: Vec::new(),
        spans: Vec::new(),
    };
    let Value::Map(map) = root else {
        unreachable!()
    };
    // the argument may hold a secret: messages show its key-like start only, never a value
    let shown = shown(spec);
    while p.pos < p.s.len() {
        p.key(map, "", 1)
            .map_err(|e| format!("{} {shown}: {e}", mode.flag()))?;
    }
    if p.set.is_empty() {
        return Err(format!(
            "{} {shown}: expected KEY=VALUE, for example {} base_domain=example.com",
            mode.flag(),
            mode.flag()
        ));
    }
    Ok(p.set)
}

fn too_deep() -> String {
    format!("a key nests more than {MAX_DEPTH} levels deep (a values file may not either)")
}

/// Whether `c` may be part of a key as messages show it.
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-/".contains(c)
}

/// The start of a flag's argument that is safe to show: its key-like characters up to the
/// first `=`, and `…` when anything follows. A value, or a key that is not one
/// (`github_token:VALUE`), is never shown.
fn shown(spec: &str) -> String {
    // key characters and `.`, and list indexes of digits only: `a[VALUE]` stops at `[`
    let mut head = String::new();
    let mut rest = spec;
    while let Some(c) = rest.chars().next() {
        if key_char(c) || c == '.' {
            head.push(c);
            rest = &rest[c.len_utf8()..];
        } else if let Some(index) = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(i, _)| i)
            .filter(|i| !i.is_empty() && i.chars().all(|d| d.is_ascii_digit()))
        {
            head.push_str(&format!("[{index}]"));
            rest = &rest[index.len() + 2..];
        } else {
            break;
        }
    }
    if head.len() < spec.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// The argument of a `--set…` flag with the value of every key path `secret` names replaced
/// by `<redacted>`, for the run log's command line: a value written with helm's escapes
/// (`\,`, `\\`) is not the text the redactor knows, and one shorter than its minimum is not
/// masked by it at all. An argument that does not parse shows only its key-like start.
pub fn masked_spec(spec: &str, mode: Mode, secret: &dyn Fn(&str) -> bool) -> String {
    let mut root = BTreeMap::new();
    let no_file = |_: &str| Ok(Value::Null);
    let mut p = Parser {
        s: spec,
        pos: 0,
        mode,
        read_file: &no_file,
        set: Vec::new(),
        spans: Vec::new(),
    };
    while p.pos < p.s.len() {
        if p.key(&mut root, "", 1).is_err() {
            return shown(spec);
        }
    }
    let mut out = String::with_capacity(spec.len());
    let mut at = 0;
    for (path, range) in &p.spans {
        if secret(path) && range.start >= at && range.end > range.start {
            out.push_str(&spec[at..range.start]);
            out.push_str(crate::secret::REDACTED);
            at = range.end;
        }
    }
    out.push_str(&spec[at..]);
    out
}

/// The typed value of one `--set` value, as helm types it.
pub fn typed(raw: &str) -> Value {
    if raw.eq_ignore_ascii_case("true") {
        Value::Bool(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Value::Bool(false)
    } else if raw.eq_ignore_ascii_case("null") {
        Value::Null
    } else if raw == "0" {
        Value::Int(0)
    } else if !raw.starts_with('0')
        && let Ok(i) = raw.parse::<i64>()
    {
        Value::Int(i)
    } else {
        Value::Str(raw.to_string())
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    mode: Mode,
    read_file: &'a dyn Fn(&str) -> Result<Value, String>,
    set: Vec<String>,
    /// Each value's key path and its byte range in the argument, for [`masked_spec`].
    spans: Vec<(String, std::ops::Range<usize>)>,
}

impl Parser<'_> {
    /// Read up to (and consuming) the first unescaped character of `stop`; answers the text
    /// read and the stop character (`None` at the end).
    fn until(&mut self, stop: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some((_, next)) => out.push(next),
                    None => out.push('\\'),
                }
                continue;
            }
            if stop.contains(&c) {
                self.pos += i + c.len_utf8();
                return (out, Some(c));
            }
            out.push(c);
        }
        self.pos = self.s.len();
        (out, None)
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    /// One key at `path` in `map`, and everything below it.
    fn key(
        &mut self,
        map: &mut BTreeMap<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let (key, stop) = self.until(&['=', '[', ',', '.']);
        // after a value, text with no `=` may be the rest of that value cut at an unescaped
        // `,` (`password=abc,def`): a secret's, so it is not shown
        let complete = matches!(stop, Some('=') | Some('.') | Some('['))
            && key.chars().all(|c| key_char(c) || c == '.');
        if let Some(prev) = self.set.last().filter(|_| !complete) {
            return Err(format!(
                "after the value of `{prev}`, a `,` is followed by text that is not KEY=VALUE \
                 (not shown: it may be the rest of the value); a comma inside a value is \
                 written `\\,`"
            ));
        }
        // `.` only escaped (`a\.b`): the key `a.b`
        if !key.chars().all(|c| key_char(c) || c == '.') {
            let start: String = key
                .chars()
                .take_while(|c| key_char(*c) || *c == '.')
                .collect();
            return Err(format!(
                "`{}…` is not a key: keys are letters, digits, `_` and `-`, joined by `.` \
                 (the rest is not shown: it may be a secret)",
                crate::value::join_path(path, &start)
            ));
        }
        let here = crate::value::join_path(path, &key);
        if key.is_empty() && stop != Some('[') {
            return Err(match stop {
                None => "a key is missing at the end".to_string(),
                Some(c) => format!("a key is missing before `{c}`"),
            });
        }
        match stop {
            Some('=') => {
                let v = self.value(&here)?;
                map.insert(key, v);
                self.set.push(here);
                Ok(())
            }
            Some('.') => {
                let child = map
                    .entry(key)
                    .or_insert_with(|| Value::Map(BTreeMap::new()));
                if !matches!(child, Value::Map(_)) {
                    // a value of the files replaced by a map: this flag set it now
                    *child = Value::Map(BTreeMap::new());
                    self.set.push(here.clone());
                }
                let Value::Map(inner) = child else {
                    unreachable!()
                };
                self.key(inner, &here, depth + 1)
            }
            Some('[') => {
                if key.is_empty() {
                    return Err("a list index needs the name of the list before `[`".into());
                }
                let index = self.index()?;
                let child = map.entry(key).or_insert_with(|| Value::List(Vec::new()));
                if !matches!(child, Value::List(_)) {
                    // `base_domain[0]=x`: the files' value replaced by a list, which validation
                    // then refuses at this flag, not at the file's line
                    *child = Value::List(Vec::new());
                    self.set.push(here.clone());
                }
                let Value::List(list) = child else {
                    unreachable!()
                };
                self.item(list, index, &here, depth + 1)
            }
            Some(',') => Err(format!(
                "key `{here}` has no value (a key cannot end with `,`; write {here}=VALUE)"
            )),
            _ => Err(format!("key `{here}` has no value: write {here}=VALUE")),
        }
    }

    /// The index between `[` and `]`.
    fn index(&mut self) -> Result<usize, String> {
        // the text between the brackets is not shown: a value typed in the wrong place (a
        // `]` missing, a `=` inside) may be a secret
        let (text, stop) = self.until(&[']']);
        if stop.is_none() {
            return Err(
                "a list index is not closed with `]` (the rest is not shown: it may be a secret)"
                    .to_string(),
            );
        }
        let i: i64 = text.trim().parse().map_err(|_| {
            "a list index is not a number: write one, as in a[0] (what was between `[` and `]` \
             is not shown: it may be a secret)"
                .to_string()
        })?;
        if i < 0 {
            return Err(format!("negative list index {i}"));
        }
        let i = i as usize;
        if i > MAX_INDEX {
            return Err(format!("list index {i} is larger than {MAX_INDEX}"));
        }
        Ok(i)
    }

    /// What follows `name[i]`: `=value`, `.key…` or `[j]…`.
    fn item(
        &mut self,
        list: &mut Vec<Value>,
        index: usize,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let here = format!("{path}[{index}]");
        if list.len() <= index {
            list.resize(index + 1, Value::Null);
        }
        let next = self.peek();
        if next.is_some() {
            self.pos += next.map_or(0, char::len_utf8);
        }
        match next {
            Some('=') => {
                list[index] = self.value(&here)?;
                self.set.push(here);
                Ok(())
            }
            Some('.') => {
                if !matches!(list[index], Value::Map(_)) {
                    list[index] = Value::Map(BTreeMap::new());
                }
                let Value::Map(inner) = &mut list[index] else {
                    unreachable!()
                };
                self.key(inner, &here, depth + 1)
            }
            Some('[') => {
                let j = self.index()?;
                if !matches!(list[index], Value::List(_)) {
                    list[index] = Value::List(Vec::new());
                }
                let Value::List(inner) = &mut list[index] else {
                    unreachable!()
                };
                self.item(inner, j, &here, depth + 1)
            }
            None => Err(format!("`{here}` has no value: write {here}=VALUE")),
            Some(c) => Err(format!(
                "unexpected `{c}` after `{here}`: expected `=`, `.` or `[`"
            )),
        }
    }

    /// The value after `=`, up to the next unescaped `,` (or the end), its range remembered.
    fn value(&mut self, path: &str) -> Result<Value, String> {
        let start = self.pos;
        let v = self.value_text(path)?;
        // without the `,` that ended it, if one did (`start` follows a `=`, so a `,` just
        // before `pos` is always the value's own end)
        let end = if self.s[..self.pos].ends_with(',') {
            self.pos - 1
        } else {
            self.pos
        };
        self.spans.push((path.to_string(), start..end));
        Ok(v)
    }

    fn value_text(&mut self, path: &str) -> Result<Value, String> {
        if self.mode == Mode::Json {
            let rest = &self.s[self.pos..];
            let mut stream =
                serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
            let v = match stream.next() {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(format!("`{path}` is not valid JSON: {e}")),
                None => return Err(format!("`{path}` has no JSON value")),
            };
            self.pos += stream.byte_offset();
            match self.peek() {
                None => {}
                Some(',') => self.pos += 1,
                Some(c) => {
                    return Err(format!(
                        "unexpected `{c}` after the JSON value of `{path}`: separate keys with `,`"
                    ));
                }
            }
            return Ok(Value::from_json(&v));
        }
        if self.peek() == Some('{') {
            self.pos += 1;
            let mut items = Vec::new();
            loop {
                let (raw, stop) = self.until(&[',', '}']);
                match stop {
                    Some(',') => items.push(self.scalar(&raw, path)?),
                    Some('}') => {
                        if !(raw.is_empty() && items.is_empty()) {
                            items.push(self.scalar(&raw, path)?);
                        }
                        break;
                    }
                    _ => return Err(format!("the list of `{path}` is not closed with `}}`")),
                }
            }
            match self.peek() {
                None => {}
                Some(',') => self.pos += 1,
                Some(c) => {
                    return Err(format!(
                        "unexpected `{c}` after the list of `{path}`: separate keys with `,`"
                    ));
                }
            }
            return Ok(Value::List(items));
        }
        let (raw, _) = self.until(&[',']);
        self.scalar(&raw, path)
    }

    fn scalar(&self, raw: &str, path: &str) -> Result<Value, String> {
        match self.mode {
            Mode::Typed => Ok(typed(raw)),
            Mode::Str => Ok(Value::Str(raw.to_string())),
            Mode::File => (self.read_file)(raw).map_err(|e| format!("`{path}`: {e}")),
            Mode::Json => unreachable!("JSON values are read whole"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::parse_yaml;

    fn set(specs: &[(&str, Mode)]) -> Result<Value, String> {
        let mut root = Value::Map(BTreeMap::new());
        for (spec, mode) in specs {
            apply(&mut root, spec, *mode, &|p| {
                Ok(Value::Str(format!("<{p}>")))
            })?;
        }
        Ok(root)
    }

    fn yaml(s: &str) -> Value {
        parse_yaml(s).unwrap()
    }

    #[test]
    fn several_keys_and_types() {
        assert_eq!(
            set(&[("a=1,b=2,c.d=true,e=x=y", Mode::Typed)]).unwrap(),
            yaml("{a: 1, b: 2, c: {d: true}, e: 'x=y'}")
        );
        // helm's typing: a leading zero keeps a string, so does --set-string
        assert_eq!(
            set(&[("t=00123,z=0,nu=null,f=FALSE,s=1.5,neg=-3", Mode::Typed)]).unwrap(),
            yaml("{t: '00123', z: 0, nu: null, f: false, s: '1.5', neg: -3}")
        );
        assert_eq!(
            set(&[("t=123,b=true", Mode::Str)]).unwrap(),
            yaml("{t: '123', b: 'true'}")
        );
        assert_eq!(set(&[("a=", Mode::Typed)]).unwrap(), yaml("{a: ''}"));
    }

    #[test]
    fn each_flag_adds_to_what_is_there() {
        assert_eq!(
            set(&[("a=1", Mode::Typed), ("b.c=2", Mode::Typed)]).unwrap(),
            yaml("{a: 1, b: {c: 2}}")
        );
        // a root that is no map (an empty values file) becomes one
        let mut root = Value::Null;
        apply(&mut root, "a=1", Mode::Typed, &|_| unreachable!()).unwrap();
        assert_eq!(root, yaml("{a: 1}"));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            set(&[(r"a\.b=1,x=a\,b,w=c\=d", Mode::Typed)]).unwrap(),
            yaml("{'a.b': 1, x: 'a,b', w: 'c=d'}")
        );
    }

    #[test]
    fn lists_and_indexes() {
        assert_eq!(
            set(&[("l={a,b,3},e={},m=1", Mode::Typed)]).unwrap(),
            yaml("{l: [a, b, 3], e: [], m: 1}")
        );
        // an empty last item is kept: only `{}` is the empty list
        assert_eq!(
            set(&[("l={a,}", Mode::Typed)]).unwrap(),
            yaml("{l: [a, '']}")
        );
        assert_eq!(
            set(&[("a[0].b=1,a[2]=x,c[0][1]=v", Mode::Typed)]).unwrap(),
            yaml("{a: [{b: 1}, null, x], c: [[null, v]]}")
        );
        assert_eq!(
            set(&[("a[0]=x", Mode::Typed), ("a[0].k=2", Mode::Typed)]).unwrap(),
            yaml("{a: [{k: 2}]}")
        );
        // the largest index is MAX_INDEX itself
        let at_most = set(&[(&format!("a[{MAX_INDEX}]=x"), Mode::Typed)]).unwrap();
        let Value::Map(m) = at_most else {
            panic!("a map")
        };
        assert!(matches!(&m["a"], Value::List(l) if l.len() == MAX_INDEX + 1));
    }

    #[test]
    fn json_and_file() {
        assert_eq!(
            set(&[(r#"a={"b":[1,"2"]},c=[true],d="00123""#, Mode::Json)]).unwrap(),
            yaml("{a: {b: [1, '2']}, c: [true], d: '00123'}")
        );
        assert_eq!(
            set(&[("a.b=/tmp/x,c={p,q}", Mode::File)]).unwrap(),
            yaml("{a: {b: '</tmp/x>'}, c: ['<p>', '<q>']}")
        );
    }

    #[test]
    fn errors_say_what_to_write() {
        // each names what is wrong and, where it can, what to write
        for (bad, says) in [
            ("novalue", "key `novalue` has no value: write novalue=VALUE"),
            (
                "a,b=1",
                "key `a` has no value (a key cannot end with `,`; write a=VALUE)",
            ),
            ("a..b=1", "a key is missing before `.`"),
            ("a[0]", "`a[0]` has no value: write a[0]=VALUE"),
            (
                "a[x]=1",
                "a list index is not a number: write one, as in a[0]",
            ),
            ("a[-1]=1", "negative list index -1"),
            ("a[70000]=1", "list index 70000 is larger than 65536"),
            ("a[0", "a list index is not closed with `]`"),
            (
                "[0]=1",
                "a list index needs the name of the list before `[`",
            ),
            (
                "a[0]x",
                "unexpected `x` after `a[0]`: expected `=`, `.` or `[`",
            ),
            ("l={a,b", "the list of `l` is not closed with `}`"),
            (
                "a.b$c=1",
                "`a.b…` is not a key: keys are letters, digits, `_` and `-`",
            ),
        ] {
            let e = set(&[(bad, Mode::Typed)]).unwrap_err();
            assert!(
                e.starts_with(&format!("--set {}: {says}", shown(bad))),
                "{bad}: {e}"
            );
        }
        let e = set(&[("a={x", Mode::Json)]).unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = set(&[("a=1 2", Mode::Json)]).unwrap_err();
        assert!(e.contains("unexpected"), "{e}");
    }

    #[test]
    fn paths_set_are_reported() {
        let mut root = Value::Map(BTreeMap::new());
        let paths = apply(
            &mut root,
            "a.b=1,c[1].d=2",
            Mode::Typed,
            &|_| unreachable!(),
        )
        .unwrap();
        assert_eq!(paths, ["a.b", "c[1].d"]);
    }

    /// The run log's form of a `--set…` argument: each secret's value (by key path) is the
    /// mask, whatever escapes it was written with; the rest as written; nothing to mask for an
    /// empty value; an argument that does not parse shows only its key-like start.
    #[test]
    fn masked_spec_masks_each_secret_value_where_it_stands() {
        let secret = |p: &str| p == "token" || p == "x.pw";
        let m = |spec: &str| masked_spec(spec, Mode::Typed, &secret);
        assert_eq!(m("a=1"), "a=1");
        assert_eq!(m("token=abc"), "token=<redacted>");
        assert_eq!(m("a=1,token=ab\\,cd,b=2"), "a=1,token=<redacted>,b=2");
        assert_eq!(
            m("token=q,x.pw=r,c=3"),
            "token=<redacted>,x.pw=<redacted>,c=3"
        );
        assert_eq!(m("token=,a=1"), "token=,a=1");
        assert_eq!(m("token="), "token=");
        assert_eq!(
            masked_spec("token=x1", Mode::Str, &secret),
            "token=<redacted>"
        );
        // cut at an unescaped comma: not parsed, the value not shown
        let bad = m("token=abc,def");
        assert!(!bad.contains("abc") && !bad.contains("def"), "{bad}");
    }

    /// After a value, a `,` must start another KEY=VALUE (or KEY.…, KEY[…]): anything else
    /// may be the rest of a value cut at an unescaped comma, and is not shown.
    #[test]
    fn text_after_a_comma_that_is_no_key_is_never_shown() {
        for bad in ["token=abc,s3cr3t", "a=1,s3cr3t y=2", "a=1,s3cr3t!=2"] {
            let e = set(&[(bad, Mode::Typed)]).unwrap_err();
            assert!(e.contains(": after the value of `"), "{bad}: {e}");
            assert!(e.contains("written `\\,`"), "{bad}: {e}");
            assert!(!e.contains("s3cr3t"), "{bad}: {e}");
        }
        assert_eq!(
            set(&[("a=1,b.c=2,d[0]=3", Mode::Typed)]).unwrap(),
            yaml("{a: 1, b: {c: 2}, d: [3]}")
        );
    }

    #[test]
    fn a_secret_in_a_bad_argument_is_never_shown() {
        for bad in [
            "github_token:s3cr3t-canary",
            ".github_token=s3cr3t-canary",
            "github_token=s3cr3t-canary,x",
            "a.github_token:s3cr3t-canary=1",
            "github_token={s3cr3t-canary",
            // a value in a list index's place, or a `]` missing before it (found by a review)
            "github_token[0=s3cr3t-canary",
            "github_token[s3cr3t-canary]=1",
            "a[0][s3cr3t-canary]=1",
            "a[0].b[s3cr3t-canary",
        ] {
            for mode in [Mode::Typed, Mode::Str, Mode::File] {
                let e = set(&[(bad, mode)]).unwrap_err();
                assert!(!e.contains("s3cr3t"), "{bad}: {e}");
                assert!(e.starts_with(&format!("{} ", mode.flag())), "{bad}: {e}");
            }
        }
        // an index of digits is shown, the rest of the argument is not
        assert_eq!(shown("a[12].b[x]=1"), "a[12].b…");
        assert_eq!(shown("a[0]"), "a[0]");
    }

    #[test]
    fn a_key_nests_at_most_max_depth_levels() {
        let dotted = |n: usize| format!("{}=1", vec!["a"; n].join("."));
        assert!(set(&[(&dotted(MAX_DEPTH), Mode::Typed)]).is_ok());
        let e = set(&[(&dotted(MAX_DEPTH + 1), Mode::Typed)]).unwrap_err();
        assert!(e.contains("nests more than 128 levels"), "{e}");
        // lists count too, and thousands of levels are refused, not a stack overflow
        let indexed = format!("a{}=1", "[0]".repeat(MAX_DEPTH - 1));
        assert!(set(&[(&indexed, Mode::Typed)]).is_ok());
        let indexed = format!("a{}=1", "[0]".repeat(MAX_DEPTH));
        assert!(set(&[(&indexed, Mode::Typed)]).is_err());
        let e = set(&[(&dotted(100_000), Mode::Str)]).unwrap_err();
        assert!(e.contains("nests more than"), "{e}");
        // a key after a list item counts as a level too: `a[0].a[0].a…`
        let mixed = |pairs: usize| format!("a{}=1", "[0].a".repeat(pairs));
        assert!(set(&[(&mixed((MAX_DEPTH - 1) / 2), Mode::Typed)]).is_ok());
        let e = set(&[(&mixed(MAX_DEPTH / 2), Mode::Typed)]).unwrap_err();
        assert!(e.contains("nests more than 128 levels"), "{e}");
    }
}
