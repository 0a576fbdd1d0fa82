//! Fault injection shared by both simulators: make the next N requests that match a method and
//! a path fail with a status, or wait first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status (and an error body in the simulator's own format).
    Status(u16),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// `None` matches any method.
    pub method: Option<String>,
    /// Matches a request whose path starts with it.
    pub path: String,
    pub remaining: u32,
    pub action: FaultAction,
}

#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<Fault>>>);

impl Faults {
    /// The next `count` requests matching `method` (`*` for any) and path prefix fail with `status`.
    pub fn fail(&self, method: &str, path: &str, count: u32, status: u16) {
        self.add(method, path, count, FaultAction::Status(status));
    }

    /// The next `count` matching requests wait `delay` first.
    pub fn delay(&self, method: &str, path: &str, count: u32, delay: Duration) {
        self.add(method, path, count, FaultAction::Delay(delay));
    }

    pub fn add(&self, method: &str, path: &str, count: u32, action: FaultAction) {
        let method = (method != "*").then(|| method.to_ascii_uppercase());
        self.lock().push(Fault {
            method,
            path: path.to_string(),
            remaining: count,
            action,
        });
    }

    /// Parse `METHOD:PATH:COUNT:STATUS` or `METHOD:PATH:COUNT:delay=MS` (the CLI's `--fault`).
    pub fn add_spec(&self, spec: &str) -> Result<(), String> {
        let parts: Vec<&str> = spec.splitn(4, ':').collect();
        let [method, path, count, what] = parts[..] else {
            return Err(format!(
                "--fault {spec}: expected METHOD:PATH:COUNT:STATUS or METHOD:PATH:COUNT:delay=MS, \
                 for example POST:/api/v1/namespaces/clearml/secrets:1:500"
            ));
        };
        let count: u32 = count
            .parse()
            .map_err(|_| format!("--fault {spec}: COUNT must be a whole number"))?;
        let action = match what.strip_prefix("delay=") {
            Some(ms) => FaultAction::Delay(Duration::from_millis(
                ms.parse()
                    .map_err(|_| format!("--fault {spec}: delay=MS needs milliseconds"))?,
            )),
            None => FaultAction::Status(
                what.parse()
                    .ok()
                    .filter(|s| (100..600).contains(s))
                    .ok_or_else(|| format!("--fault {spec}: STATUS must be an HTTP status"))?,
            ),
        };
        self.add(method, path, count, action);
        Ok(())
    }

    /// The action for this request, if a fault matches; counts it down.
    pub fn take(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut faults = self.lock();
        let f = faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.method.as_deref().is_none_or(|m| m == method)
                && path.starts_with(&f.path)
        })?;
        f.remaining -= 1;
        let action = f.action.clone();
        faults.retain(|f| f.remaining > 0);
        Some(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_matches() {
        let f = Faults::default();
        f.fail("post", "/api/v1/namespaces/a/secrets", 2, 500);
        assert_eq!(f.take("GET", "/api/v1/namespaces/a/secrets"), None);
        assert_eq!(
            f.take("POST", "/api/v1/namespaces/a/secrets/x"),
            Some(FaultAction::Status(500))
        );
        assert!(f.take("POST", "/api/v1/namespaces/a/secrets").is_some());
        assert_eq!(f.take("POST", "/api/v1/namespaces/a/secrets"), None);
        f.add_spec("*:/queues.create:1:delay=5").unwrap();
        assert_eq!(
            f.take("GET", "/queues.create"),
            Some(FaultAction::Delay(Duration::from_millis(5)))
        );
        assert!(f.add_spec("GET:/x:one:500").is_err());
        assert!(f.add_spec("GET:/x").is_err());
    }
}
