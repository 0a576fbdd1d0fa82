//! Secrets as a type, plus a process-wide redactor as a second line of defence.
//!
//! A [`Secret`] prints as `<redacted>` through every formatting path (Display, Debug, serde, Rhai's
//! `to_string`/`to_debug`). Concatenating a secret with a string gives a secret. The only way to
//! see the value is [`Secret::expose`], which the live executors call at the boundary (a 0600
//! file or a child's stdin), never for output.
//!
//! Every secret value is also registered with the [`redactor`]; everything the tool writes to
//! stdout and stderr passes through [`redact`], so a secret that reached a plain string anyway
//! (string interpolation, an error message from a child process) is still masked.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// What a secret shows as, everywhere.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are masked by type only: masking every occurrence of a two-letter
/// string in all output would garble it.
const MIN_REDACT_LEN: usize = 4;

/// A secret value. `covered` says the redactor masks every secret part of it already (its
/// leaves were registered), so a string built from secrets need not be registered whole: the
/// redactor's memory stays bounded by the distinct leaves, not by their concatenations.
#[derive(Clone)]
pub struct Secret(Arc<str>, bool);

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Secret {}
impl std::hash::Hash for Secret {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

impl Secret {
    /// A secret leaf: registered with the redactor.
    pub fn new(value: impl Into<String>) -> Self {
        let value: String = value.into();
        let covered = register(&value);
        Secret(Arc::from(value), covered)
    }

    /// A secret built from others (a concatenation, a quoted form): registered only when its
    /// parts are not all masked already (`covered`: every secret part is a registered leaf that
    /// appears in `value` as it is).
    pub fn derived(value: impl Into<String>, covered: bool) -> Self {
        let value: String = value.into();
        if covered {
            Secret(Arc::from(value), true)
        } else {
            Secret::new(value)
        }
    }

    /// Whether the redactor masks every secret part of this value.
    pub fn covered(&self) -> bool {
        self.1
    }

    /// The real value. Only for the boundary where it leaves the process in a safe channel.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if SENTINEL.with(std::cell::Cell::get) {
            // a secret made from a string that already held the mask (an interpolated secret
            // passed where a secret is expected) shows the mask, so the guard sees it
            s.serialize_str(if self.0.contains(REDACTED) {
                REDACTED
            } else {
                SENTINEL_TEXT
            })
        } else {
            s.serialize_str(REDACTED)
        }
    }
}

thread_local! {
    static SENTINEL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a secret serializes as inside [`with_sentinel`]: never shown, used only to tell a real
/// secret from a plain string that merely holds the text `<redacted>`.
pub const SENTINEL_TEXT: &str = "\u{1}secret\u{1}";

/// Serialize inside `f` with secrets as [`SENTINEL_TEXT`] instead of [`REDACTED`].
pub fn with_sentinel<R>(f: impl FnOnce() -> R) -> R {
    SENTINEL.with(|c| c.set(true));
    let r = f();
    SENTINEL.with(|c| c.set(false));
    r
}

/// The registered leaves and the automata that find them (and their encodings) in any text.
/// Building an automaton of many leaves is slow (a thousand fixed users' passwords, each with its
/// encodings, take tens of milliseconds), so the `base` automata (one, or a part per core, see
/// [`automata`]) are not rebuilt for each leaf registered after them: those `recent` leaves get
/// an automaton of their own, small and quick to build, and join the base only when they are
/// many (a quarter of it, at least [`RECENT_MAX`]).
#[derive(Default)]
struct Registry {
    leaves: BTreeSet<String>,
    /// The automata of every leaf registered before their build (see [`automata`]), and how
    /// many leaves there were.
    base: Option<(Vec<Arc<aho_corasick::AhoCorasick>>, usize)>,
    /// The leaves registered since `base` was built, and their automaton once built.
    recent: BTreeSet<String>,
    recent_matcher: Option<Arc<aho_corasick::AhoCorasick>>,
}

/// The recent leaves kept apart from the base automaton, at least (see [`Registry`]).
const RECENT_MAX: usize = 64;

fn registry() -> &'static Mutex<Registry> {
    static SECRETS: OnceLock<Mutex<Registry>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Registry::default()))
}

/// Remember a secret value so that [`redact`] masks it in any text; answers whether it is
/// masked (long enough to be).
pub fn register(value: &str) -> bool {
    if value.chars().count() < MIN_REDACT_LEN {
        return false;
    }
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if !r.leaves.contains(value) {
        r.leaves.insert(value.to_string());
        r.recent.insert(value.to_string());
        r.recent_matcher = None;
    }
    true
}

/// Whether `value` is a registered leaf (for tests of what is registered whole).
#[cfg(test)]
pub(crate) fn is_registered(value: &str) -> bool {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .leaves
        .contains(value)
}

/// The forms a leaf may take in output besides itself: base64 at each of the three alignments,
/// so that the leaf is found inside a larger base64 blob too (a Kubernetes Secret's data). For
/// an alignment, only the characters the leaf alone determines are kept. Base64 of base64 (a
/// Docker config's `auth` inside a Secret's data) is not a pattern: [`redact_with`] decodes
/// base64 runs and looks for these forms inside; nor is a URL-encoded leaf, as encoders differ
/// in what they escape: [`redact_with`] decodes the escapes (see [`mask_escaped`]).
fn encodings(leaf: &str) -> Vec<String> {
    let std = &base64::engine::general_purpose::STANDARD_NO_PAD;
    let url_safe = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut out = Vec::with_capacity(6);
    out.extend(aligned_base64(leaf.as_bytes(), std));
    out.extend(aligned_base64(leaf.as_bytes(), url_safe));
    out.extend(escaped_forms(leaf));
    out.sort();
    out.dedup();
    out
}

/// The forms a leaf takes when JSON or YAML writes it (`--diff`'s values, a support bundle's
/// JSON): the escaped inside of a quoted string (`\t`, `\n`, `\"`, `\\`, YAML's `\a`), and
/// for a leaf of several lines (a private key) each line, as a YAML block writes them apart and
/// indented. Lines shorter than twice [`MIN_REDACT_LEN`] are left out (a `}` or `---` line would
/// mask unrelated text).
fn escaped_forms(leaf: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(json) = serde_json::to_string(leaf) {
        let inner = &json[1..json.len() - 1];
        if inner != leaf {
            out.push(inner.to_string());
        }
    }
    if let Ok(yaml) = crate::value::json_to_yaml(&serde_json::Value::String(leaf.to_string()))
        && let Some(inner) = yaml
            .trim_end_matches('\n')
            .strip_prefix('"')
            .and_then(|y| y.strip_suffix('"'))
        && inner != leaf
    {
        out.push(inner.to_string());
    }
    if leaf.contains(['\n', '\r']) {
        out.extend(
            leaf.lines()
                .map(str::trim)
                .filter(|l| l.chars().count() >= 2 * MIN_REDACT_LEN)
                .map(str::to_string),
        );
    }
    out
}

/// `bytes` in base64 at the three alignments of a larger blob: the characters of each whose
/// six bits all come from `bytes`.
fn aligned_base64(bytes: &[u8], engine: &base64::engine::GeneralPurpose) -> Vec<String> {
    use base64::Engine as _;
    let mut out = Vec::with_capacity(3);
    for shift in 0..3usize {
        let mut buf = vec![0u8; shift];
        buf.extend_from_slice(bytes);
        let enc = engine.encode(&buf);
        let start = (shift * 8).div_ceil(6);
        let end = buf.len() * 8 / 6;
        if end > start && end - start >= MIN_REDACT_LEN + 2 {
            out.push(enc[start..end].to_string());
        }
    }
    out
}

/// The leaves one automaton takes at least before the base is built in parts (see [`automata`]).
const LEAVES_PER_PART: usize = 256;

/// The automata of `leaves` and their encodings: one, or with many leaves (a thousand fixed
/// users' passwords, each with its encodings, take tens of milliseconds to build) one part per
/// core, of about [`LEAVES_PER_PART`] leaves or more each, built at once on scoped threads. [`redact`]
/// takes the leftmost-longest match of any number of automata, so the parts answer as one.
fn automata(leaves: &BTreeSet<String>, cores: usize) -> Vec<Arc<aho_corasick::AhoCorasick>> {
    let parts = cores.min(leaves.len() / LEAVES_PER_PART).max(1);
    if parts == 1 {
        return vec![automaton(leaves.iter())];
    }
    let all: Vec<&String> = leaves.iter().collect();
    std::thread::scope(|s| {
        let builds: Vec<_> = all
            .chunks(all.len().div_ceil(parts))
            .map(|part| s.spawn(move || automaton(part.iter().copied())))
            .collect();
        builds
            .into_iter()
            .map(|b| b.join().expect("an automaton's build does not panic"))
            .collect()
    })
}

/// The automaton of `leaves` and their encodings.
fn automaton<'a>(leaves: impl Iterator<Item = &'a String>) -> Arc<aho_corasick::AhoCorasick> {
    let mut patterns: Vec<String> = Vec::new();
    for leaf in leaves {
        patterns.push(leaf.clone());
        patterns.extend(encodings(leaf));
    }
    let ac = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(&patterns)
        .expect("plain string patterns always build");
    Arc::new(ac)
}

/// The automata of the registered leaves: the base one and the recent leaves' (see
/// [`Registry`]), each built when first needed.
fn matchers() -> Vec<Arc<aho_corasick::AhoCorasick>> {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    matchers_of(&mut r)
}

fn matchers_of(r: &mut Registry) -> Vec<Arc<aho_corasick::AhoCorasick>> {
    let base_len = r.base.as_ref().map_or(0, |(_, n)| *n);
    if r.recent.len() > RECENT_MAX.max(base_len / 4) {
        // many new leaves: the automata of all again
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let all = automata(&r.leaves, cores);
        let n = r.leaves.len();
        r.base = Some((all, n));
        r.recent.clear();
        r.recent_matcher = None;
    }
    if !r.recent.is_empty() && r.recent_matcher.is_none() {
        r.recent_matcher = Some(automaton(r.recent.iter()));
    }
    let base = r.base.iter().flat_map(|(parts, _)| parts.iter().cloned());
    base.chain(r.recent_matcher.clone()).collect()
}

/// Mask every registered secret value, and its URL and base64 encodings, in `text`. The
/// longest match wins, so a secret that contains another is masked whole, whichever automaton
/// knows each. One pass over the text per automaton (see [`matchers`]), whatever the number of
/// secrets.
pub fn redact(text: &str) -> String {
    redact_with(&matchers(), text)
}

/// Text that went through [`redact`] once, to be written in more than one place (a plan of
/// megabytes, on stdout and in the support bundle's log) without masking it again. Only
/// [`masked`] makes one.
pub struct Masked(String);

impl Masked {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` through [`redact`], as [`Masked`].
pub fn masked(text: &str) -> Masked {
    Masked(redact(text))
}

/// [`redact`] for a panic's message, which may come while the registry is held: `None` if it
/// stays held for a second (by the panicking thread itself, [`redact`] would wait forever).
pub fn redact_if_free(text: &str) -> Option<String> {
    for _ in 0..200 {
        let automata = match registry().try_lock() {
            Ok(mut r) => matchers_of(&mut r),
            Err(std::sync::TryLockError::Poisoned(e)) => matchers_of(&mut e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
        };
        return Some(redact_with(&automata, text));
    }
    None
}

/// [`redact`] with these automata: every match masked, then every match in the text with its
/// escapes decoded (see [`mask_escaped`]), then every run of base64 whose decoding holds a match
/// (a leaf's base64 inside base64: a Docker config's `auth` in a Secret's data).
fn redact_with(automata: &[Arc<aho_corasick::AhoCorasick>], text: &str) -> String {
    if automata.is_empty() {
        return text.to_string();
    }
    let text = mask_escaped(automata, masked_matches(automata, text));
    mask_encoded_runs(automata, text)
}

/// Mask each match of the automata in `text` read with its escapes decoded: URL escapes
/// (`%40`, `%2f`), whichever characters the encoder left as they are (RFC 3986 keeps `-._~`,
/// JavaScript's `encodeURIComponent` also `!*'()`, Python's `quote` also `/`), and JSON's
/// `\u0026` (Go writes `&`, `<` and `>` so). The text the match covers, escapes and all, is
/// masked.
fn mask_escaped(automata: &[Arc<aho_corasick::AhoCorasick>], text: String) -> String {
    if !text.contains('%') && !text.contains("\\u") {
        return text;
    }
    let bytes = text.as_bytes();
    let hex = |at: usize, n: usize| {
        let digits = bytes.get(at..at + n)?;
        let s = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(s, 16)
            .ok()
            .filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
    };
    // the decoded text, and where in `text` each of its bytes starts (and its end)
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut origin = Vec::with_capacity(bytes.len() + 1);
    let mut i = 0;
    let mut utf8 = [0u8; 4];
    while i < bytes.len() {
        let escape = match bytes[i] {
            b'%' => hex(i + 1, 2).map(|b| (char::from(b as u8), 3)),
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                hex(i + 2, 4).and_then(char::from_u32).map(|c| (c, 6))
            }
            _ => None,
        };
        let (char_bytes, len): (&[u8], usize) = match escape {
            // `%XX` is one byte, whatever it is (UTF-8 is escaped a byte at a time)
            Some((c, 3)) => {
                utf8[0] = c as u8;
                (&utf8[..1], 3)
            }
            Some((c, len)) => (c.encode_utf8(&mut utf8).as_bytes(), len),
            None => (&bytes[i..=i], 1),
        };
        origin.extend(std::iter::repeat_n(i, char_bytes.len()));
        decoded.extend_from_slice(char_bytes);
        i += len;
    }
    if decoded.len() == bytes.len() {
        return text;
    }
    origin.push(bytes.len());
    let mut spans: Vec<std::ops::Range<usize>> = automata
        .iter()
        .flat_map(|ac| ac.find_iter(&decoded[..]))
        .map(|m| origin[m.start()]..origin[m.end()])
        .filter(|r| text.is_char_boundary(r.start) && text.is_char_boundary(r.end))
        .collect();
    if spans.is_empty() {
        return text;
    }
    spans.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in spans {
        if r.start >= at {
            out.push_str(&text[at..r.start]);
            out.push_str(REDACTED);
        }
        at = at.max(r.end);
    }
    out.push_str(&text[at..]);
    out
}

/// Runs of base64 shorter than this are not decoded: whole groups of four characters that
/// decode to a leaf's shortest base64 form (MIN_REDACT_LEN + 2 characters) are at least this
/// long.
const MIN_ENCODED_RUN: usize = (MIN_REDACT_LEN + 2).div_ceil(3) * 4;

/// Mask each run of standard base64 characters (with its padding) whose decoding, from any of
/// the four offsets (the blob may follow other base64 characters), holds a match. The
/// automata know a leaf's own base64 forms, so this finds base64 of base64 at any alignment
/// with no pattern of its own: nine patterns a leaf fewer to build (see [`encodings`]).
fn mask_encoded_runs(automata: &[Arc<aho_corasick::AhoCorasick>], text: String) -> String {
    use base64::Engine as _;
    let decoder = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_b64(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_b64(bytes[i]) {
            i += 1;
        }
        let end = i;
        while i < bytes.len() && bytes[i] == b'=' && i - end < 2 {
            i += 1;
        }
        // too short to hold base64 of a leaf's base64 form, or a mask this redactor wrote
        let a_mask = start > 0 && bytes[start - 1] == b'<' && bytes.get(end) == Some(&b'>');
        if end - start < MIN_ENCODED_RUN || (a_mask && &bytes[start..end] == b"redacted") {
            continue;
        }
        let holds_a_match = (0..4).any(|offset| {
            let whole = (end - start).saturating_sub(offset) / 4 * 4;
            decoded.clear();
            whole > 0
                && decoder
                    .decode_vec(&bytes[start + offset..start + offset + whole], &mut decoded)
                    .is_ok()
                && automata.iter().any(|ac| ac.is_match(&decoded[..]))
        });
        if holds_a_match {
            runs.push(start..i);
        }
    }
    if runs.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for run in runs {
        out.push_str(&text[at..run.start]);
        out.push_str(REDACTED);
        at = run.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Every match of the automata in `text` masked.
fn masked_matches(automata: &[Arc<aho_corasick::AhoCorasick>], text: &str) -> String {
    let find = |ac: &aho_corasick::AhoCorasick, at: usize| {
        ac.find(aho_corasick::Input::new(text).range(at..))
    };
    // each automaton's next match from `at`: the leftmost of them wins, the longest at a tie
    // (the leftmost-longest match of all the leaves together); a match that starts at or
    // after `at` is still its automaton's next one there, so only the others are searched again
    let mut next: Vec<Option<aho_corasick::Match>> =
        automata.iter().map(|ac| find(ac, 0)).collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(m) = next
        .iter()
        .flatten()
        .min_by_key(|m| (m.start(), std::cmp::Reverse(m.end())))
        .copied()
    {
        out.push_str(&text[at..m.start()]);
        out.push_str(REDACTED);
        at = m.end();
        for (ac, n) in automata.iter().zip(next.iter_mut()) {
            if n.is_some_and(|n| n.start() < at) {
                *n = find(ac, at);
            }
        }
    }
    out.push_str(&text[at..]);
    out
}

/// Generate `bytes` random bytes from the operating system's RNG, hex-encoded.
pub fn generate_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The rule that marks site values secret when they are loaded, by key name. Documented in the
/// README ("Secrets"); `siblings` are the other key names of the same map.
///
/// - a name containing `password`, `passwd`, `secret`, `token`, `private_key` or `api_key` is
///   secret, unless
///   it names where a secret lives rather than holding one (ends in `url`, `uri`, `name`, `file`,
///   `path`, `ref`, `enabled`);
/// - a name ending in `key` is secret when the same map also has the matching `…secret` name
///   (`apiserverKey`/`apiserverSecret`, `key`/`secret`, `user_key`/`user_secret`).
pub fn is_secret_key(name: &str, siblings: &[&str]) -> bool {
    let norm = normalize(name);
    const NOT_A_VALUE: [&str; 7] = ["url", "uri", "name", "file", "path", "ref", "enabled"];
    if NOT_A_VALUE.iter().any(|s| norm.ends_with(s)) {
        return false;
    }
    if [
        "password",
        "passwd",
        "secret",
        "token",
        "privatekey",
        "apikey",
    ]
    .iter()
    .any(|w| norm.contains(w))
    {
        return true;
    }
    if let Some(prefix) = norm.strip_suffix("key") {
        let wanted = format!("{prefix}secret");
        return siblings.iter().any(|s| normalize(s) == wanted);
    }
    false
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf's escaped forms: JSON's and YAML's quoted insides when they differ from the leaf,
    /// and each line of 8 characters or more of a multi-line leaf; none for a plain one-line
    /// leaf (the leaf itself is a pattern already).
    #[test]
    fn escaped_forms_are_the_quoted_insides_and_the_long_lines() {
        assert_eq!(escaped_forms("plain-value-1"), Vec::<String>::new());
        assert_eq!(escaped_forms("tab\there"), ["tab\\there", "tab\\there"]);
        // YAML writes this one single-quoted: JSON's form only
        assert_eq!(escaped_forms("say \"hi\""), ["say \\\"hi\\\""]);
        // YAML writes a bell as \a, JSON as \u0007
        assert_eq!(escaped_forms("ring\u{7}"), ["ring\\u0007", "ring\\a"]);
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n  abcdefg\nabcdefgh\n-----END KEY-----\n";
        let forms = escaped_forms(key);
        for line in [
            "-----BEGIN KEY-----",
            "MIIEvQIBADANBgkq",
            "abcdefgh",
            "-----END KEY-----",
        ] {
            assert!(forms.iter().any(|f| f == line), "{line}: {forms:?}");
        }
        assert!(!forms.iter().any(|f| f == "abcdefg"), "{forms:?}");
    }

    #[test]
    fn secrets_compare_and_hash_by_value() {
        use std::collections::HashSet;
        let a = Secret::new("value-one");
        assert!(a == Secret::new("value-one"));
        assert!(a != Secret::new("value-two"));
        let set: HashSet<Secret> = [
            a.clone(),
            Secret::new("value-one"),
            Secret::new("value-two"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn a_secret_measures_and_hashes_its_value() {
        use std::hash::{Hash, Hasher};
        // characters, not bytes: a minimum length is the user's count
        let s = Secret::new("pässwörd-123");
        assert_eq!(s.len(), 12);
        assert!(!s.is_empty());
        let empty = Secret::new("");
        assert_eq!(empty.len(), 0);
        assert!(empty.is_empty());
        let hash = |s: &Secret| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        assert_eq!(
            hash(&Secret::new("value-one")),
            hash(&Secret::new("value-one"))
        );
        assert_ne!(
            hash(&Secret::new("value-one")),
            hash(&Secret::new("value-two"))
        );
    }

    #[test]
    fn base64_fragments_too_short_to_mask_are_left_out() {
        let std = &base64::engine::general_purpose::STANDARD_NO_PAD;
        // a 4-character value's alignments give at most 5 characters it alone determines:
        // too short to mask without masking unrelated base64
        for e in aligned_base64(b"q7#v", std) {
            assert!(e.len() >= MIN_REDACT_LEN + 2, "{e}");
        }
        // five characters give a 6-character fragment at the first alignment: kept
        assert!(
            aligned_base64(b"k3y!z", std).iter().any(|e| e.len() == 6),
            "{:?}",
            aligned_base64(b"k3y!z", std)
        );
        // a longer value keeps all three alignments, each of the characters it determines
        let long = aligned_base64(b"a-longer-secret", std);
        assert_eq!(long.len(), 3, "{long:?}");
        assert_eq!(long[0], "YS1sb25nZXItc2VjcmV0");
    }

    #[test]
    fn secret_words_are_found_whatever_the_separators_and_case() {
        assert!(is_secret_key("private_key", &[]));
        assert!(is_secret_key("Private-Key", &[]));
        assert!(is_secret_key("user_key", &["user-secret"]));
        assert!(!is_secret_key("user_key", &["user_name"]));
    }

    #[test]
    fn secret_never_formats() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redactor_masks_registered_values() {
        register("abcd-1234-token");
        register("abcd-1234-token-longer");
        assert_eq!(
            redact("a abcd-1234-token-longer b abcd-1234-token"),
            "a <redacted> b <redacted>"
        );
        register("xy");
        assert_eq!(redact("xy"), "xy");
        // the shortest value masked has MIN_REDACT_LEN characters; one fewer is not masked
        assert!(register("q7#v"));
        assert_eq!(redact("[q7#v]"), "[<redacted>]");
        assert!(!register("q7#"));
    }

    #[test]
    fn a_secret_registered_after_the_automaton_was_built_is_masked_whole() {
        // enough leaves that the next redaction builds one automaton of all (see Registry)
        for i in 0..(RECENT_MAX * 5) {
            register(&format!("filler-leaf-{i:04}-0061"));
        }
        register("outer-0061-inner-0061-end");
        register("short-0062");
        assert_eq!(redact("filler-leaf-0003-0061"), REDACTED);
        // registered after that build, each inside one the automaton of all knows: either way
        // round, the longest match wins and the larger secret is masked whole
        register("inner-0061");
        register("x-short-0062-y");
        assert_eq!(
            redact("a outer-0061-inner-0061-end b inner-0061 c"),
            "a <redacted> b <redacted> c"
        );
        assert_eq!(
            redact("a x-short-0062-y b short-0062 c"),
            "a <redacted> b <redacted> c"
        );
        // text around and between matches of both automata is kept as it was
        assert_eq!(
            redact("short-0062inner-0061 é short-0062"),
            "<redacted><redacted> é <redacted>"
        );
    }

    #[test]
    fn the_automata_built_in_parts_answer_as_one() {
        let mut leaves: BTreeSet<String> = (0..(LEAVES_PER_PART * 3))
            .map(|i| format!("m-filler-{i:04}-0071"))
            .collect();
        // sorted first and last: the outer leaf in the first part, the one inside it in the last
        leaves.insert("a-outer-zz-inner-0071-end".into());
        leaves.insert("zz-inner-0071".into());
        let parts = automata(&leaves, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            redact_with(&parts, "x a-outer-zz-inner-0071-end y zz-inner-0071 z"),
            "x <redacted> y <redacted> z"
        );
        // every leaf is found, whichever part holds it
        for leaf in &leaves {
            assert_eq!(redact_with(&parts, &format!("[{leaf}]")), "[<redacted>]");
        }
        // one part per core, each of about LEAVES_PER_PART leaves or more
        assert_eq!(automata(&leaves, 1).len(), 1);
        assert_eq!(automata(&leaves, 8).len(), 3);
        let few: BTreeSet<String> = leaves
            .iter()
            .take(LEAVES_PER_PART * 2 - 1)
            .cloned()
            .collect();
        assert_eq!(automata(&few, 8).len(), 1);
    }

    #[test]
    fn redactor_masks_encodings_inside_larger_text() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let leaf = "p@ss/w0rd+enc-0042";
        register(leaf);
        // inside a base64 blob at each alignment, and base64 of that (a Docker `auth`)
        for prefix in ["", "u", "us", "usr:"] {
            let blob = b64.encode(format!("{prefix}{leaf}-and-more"));
            assert!(redact(&blob).contains(REDACTED), "{prefix:?}: {blob}");
            let double = b64.encode(format!("{{\"auth\":\"{blob}\"}}"));
            // alone, in a manifest, and after other base64 characters (each alignment)
            assert_eq!(redact(&double), REDACTED, "{prefix:?}: {double}");
            let line = format!("  .dockerconfigjson: {double}\n");
            assert_eq!(redact(&line), format!("  .dockerconfigjson: {REDACTED}\n"));
            for glued in ["A", "AB", "ABC", "ABCD"] {
                let text = format!("x {glued}{double} y");
                assert_eq!(redact(&text), format!("x {REDACTED} y"), "{glued}{double}");
            }
        }
        // base64 with no leaf inside is left as it is, however it is cut
        let other = b64.encode("{\"auth\":\"dXNlcjpub3RoaW5nLXNlY3JldA==\"}");
        assert_eq!(redact(&format!("AB{other}")), format!("AB{other}"));
        let url = "postgres://u:p%40ss%2Fw0rd%2Benc%2D0042@db";
        assert_eq!(redact(url), "postgres://u:<redacted>@db");
    }

    #[test]
    fn base64_of_base64_is_masked_down_to_the_shortest_form() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let double =
            |leaf: &str| b64.encode(base64::engine::general_purpose::STANDARD_NO_PAD.encode(leaf));
        // the shortest: a 5-character leaf, whose twice-encoded form is a run of 10 characters
        register("k3y!z");
        let short = double("k3y!z");
        assert_eq!(short.trim_end_matches('=').len(), 10, "{short}");
        assert_eq!(redact(&short), REDACTED);
        assert_eq!(
            redact(&format!("auth: {short}\n")),
            format!("auth: {REDACTED}\n")
        );
    }

    #[test]
    fn a_run_of_min_encoded_run_holding_a_leafs_shortest_form_is_masked() {
        use base64::Engine as _;
        // a 5-character leaf's 6-character form (its first alignment), encoded again: 8
        // characters, the shortest run that is decoded
        register("k3y!z");
        let std = &base64::engine::general_purpose::STANDARD_NO_PAD;
        let form = aligned_base64(b"k3y!z", std)
            .into_iter()
            .find(|e| e.len() == MIN_REDACT_LEN + 2)
            .expect("a 6-character form");
        let run = base64::engine::general_purpose::STANDARD.encode(&form);
        assert_eq!(run.len(), MIN_ENCODED_RUN, "{run}");
        assert_eq!(redact(&run), REDACTED);
        assert_eq!(redact(&format!("a: {run}\n")), format!("a: {REDACTED}\n"));
    }

    #[test]
    fn an_encoded_run_is_masked_whole_with_its_padding_and_inside_angle_brackets() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        register("w0rd-leaf-93");
        // the JSON's other bytes put `+` and `/` in the run, before and after the auth
        let json = format!(
            "{{\"x\":\"~~~???>>>\",\"auth\":\"{}\",\"y\":\"???~~~\"}}",
            b64.encode("user:w0rd-leaf-93")
        );
        let blob = b64.encode(json);
        let bare = blob.trim_end_matches('=');
        assert!(bare.contains('+') && bare.contains('/'), "{blob}");
        assert_eq!(redact(&blob), REDACTED);
        assert_eq!(redact(&format!("x {blob} y")), format!("x {REDACTED} y"));
        // two `=` at most are its padding
        assert_eq!(redact(&format!("{bare}===;")), format!("{REDACTED}=;"));
        assert_eq!(redact(&format!("{bare}=;")), format!("{REDACTED};"));
        // only this redactor's own mask is passed over, not any run in angle brackets
        assert_eq!(redact(&format!("<{bare}>")), format!("<{REDACTED}>"));
        assert_eq!(redact("<redacted>"), REDACTED);
    }

    /// URL encoders differ in what they leave as it is (RFC 3986 keeps `-._~`, JavaScript's
    /// `encodeURIComponent` also `!*'()`, Python's `quote` also `/`) and in the case of the
    /// hex digits: a leaf is found whichever wrote it.
    #[test]
    fn a_leaf_is_found_url_encoded_by_any_encoder() {
        register("p@ss/w0rd-enc_0043!");
        for encoded in [
            "p%40ss%2Fw0rd-enc_0043%21",     // RFC 3986, Go's url.QueryEscape
            "p%40ss%2Fw0rd-enc_0043!",       // encodeURIComponent
            "p%40ss/w0rd-enc_0043%21",       // Python's quote
            "p%40ss%2fw0rd-enc_0043%21",     // lowercase hex
            "p%40ss%2Fw0rd%2Denc%5F0043%21", // every character not alphanumeric
        ] {
            assert_eq!(
                redact(&format!("postgres://u:{encoded}@db:5432/x")),
                "postgres://u:<redacted>@db:5432/x",
                "{encoded}"
            );
        }
        // JSON as Go writes it, `&`, `<` and `>` escaped
        register("tok&en<0043>");
        assert_eq!(
            redact(r#"{"auth":"tok\u0026en\u003c0043\u003e","n":1}"#),
            r#"{"auth":"<redacted>","n":1}"#
        );
        // text without a leaf, escapes and all, is left as it is (a broken escape too)
        let plain = r#"GET /a%20b?q=%41%zz%4 {"s":"\u00e9\u12"} HTTP/1.1"#;
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn concatenations_are_not_registered() {
        let a = Secret::new("leaf-one-0051");
        let joined = Secret::derived(format!("x{}y", a.expose()), a.covered());
        assert!(joined.covered());
        let reg = registry().lock().unwrap();
        assert!(reg.leaves.contains("leaf-one-0051"));
        assert!(!reg.leaves.contains("xleaf-one-0051y"));
        drop(reg);
        // a short secret is not a registered leaf: the first string built from it is
        let short = Secret::new("ab");
        assert!(!short.covered());
        let built = Secret::derived(format!("{}-built-0052", short.expose()), short.covered());
        assert!(built.covered());
        assert!(registry().lock().unwrap().leaves.contains("ab-built-0052"));
    }

    #[test]
    fn key_rule() {
        assert!(is_secret_key("dockerhub_token", &[]));
        assert!(is_secret_key("password", &[]));
        assert!(is_secret_key("client_secret", &[]));
        assert!(is_secret_key("secureAuthTokenSecret", &[]));
        assert!(is_secret_key("apiserverKey", &["apiserverSecret"]));
        assert!(is_secret_key("key", &["secret"]));
        assert!(is_secret_key("user_key", &["user_secret", "email"]));
        assert!(!is_secret_key("key", &["name"]));
        assert!(!is_secret_key("access_token_url", &[]));
        assert!(!is_secret_key("secret_name", &[]));
        assert!(!is_secret_key("base_domain", &[]));
    }

    #[test]
    fn generated_hex_has_requested_size() {
        let a = generate_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, generate_hex(16).unwrap());
    }
}
