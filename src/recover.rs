//! Recovery of a release helm left `pending-install`, `pending-upgrade` or `pending-rollback`.
//!
//! Helm 3 and 4 keep no lock: a pending record means either that a helm operation is running
//! right now, or that one ended without recording its outcome (killed, or its last write to
//! the record failed). Only the second may be cleared, and the record alone cannot tell them
//! apart (an honest `--wait` may stay pending for its whole timeout, and a helm on another
//! machine is invisible from here). So a pending release is recovered only on evidence:
//!
//! - this tool ran the helm that wrote the record and saw it exit: it then notes that on the
//!   record's own Secret ([`crate::kube::HELM_EXITED`]), and the next run recovers it by itself;
//! - or the operator says no helm operation is running on it: `--recover-pending`.
//!
//! Without either, the chart step is refused with the record's age and the choices; nothing is
//! changed. The recovery itself is helm's own command: a rollback to the last deployed revision,
//! or, for a first install that never reached `deployed`, `helm uninstall` (which keeps what
//! helm keeps: PersistentVolumeClaims made from StatefulSet templates and resources annotated
//! `helm.sh/resource-policy: keep`), after which the step installs again.

use crate::kube::ReleaseRecord;

/// What clears a pending release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// `helm rollback RELEASE REVISION`: the last deployed revision.
    Rollback { to: i64 },
    /// `helm uninstall RELEASE`: a first install that never reached `deployed`.
    Uninstall,
}

impl Recovery {
    /// The helm arguments that carry it out.
    pub fn helm_args(&self, release: &str, namespace: &str) -> Vec<String> {
        match self {
            Recovery::Rollback { to } => vec![
                "rollback".into(),
                release.into(),
                to.to_string(),
                "-n".into(),
                namespace.into(),
            ],
            Recovery::Uninstall => vec![
                "uninstall".into(),
                release.into(),
                "-n".into(),
                namespace.into(),
            ],
        }
    }

    /// What it does, in words, with the command.
    pub fn describe(&self, release: &str, namespace: &str) -> String {
        let command = format!("`helm {}`", self.helm_args(release, namespace).join(" "));
        match self {
            Recovery::Rollback { to } => {
                format!("roll it back to revision {to}, the last deployed ({command})")
            }
            Recovery::Uninstall => format!(
                "uninstall the unfinished first install ({command}; as helm does, \
                 PersistentVolumeClaims and resources annotated helm.sh/resource-policy: keep are \
                 kept) and install it again"
            ),
        }
    }
}

/// The recovery of a pending release: it has one only when a revision before it was deployed
/// (rolled back to), or when it is a first install with none (uninstalled). A `superseded`
/// revision was deployed until a newer one replaced it: helm 3 marks the deployed revision
/// superseded before it records the new one's outcome, so after a failed last write the
/// revision that ran is `superseded`, not `deployed`.
pub fn recovery(rec: &ReleaseRecord) -> Option<Recovery> {
    let latest = rec.revision();
    let deployed = rec
        .history
        .iter()
        .filter(|(rev, state)| *rev < latest && (state == "deployed" || state == "superseded"))
        .map(|(rev, _)| *rev)
        .max();
    match (deployed, rec.state()) {
        (Some(to), _) => Some(Recovery::Rollback { to }),
        (None, "pending-install") => Some(Recovery::Uninstall),
        _ => None,
    }
}

/// How long ago, in words.
fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}min", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Whether a pending release may be recovered now, and how; otherwise the refusal, with the
/// record's age and the choices. `forced`: the operator's `--recover-pending`.
pub fn decide(
    release: &str,
    namespace: &str,
    rec: &ReleaseRecord,
    forced: bool,
) -> Result<Recovery, String> {
    let state = rec.state();
    let written = rec
        .age_secs
        .map(|s| format!(", written {} ago", age(s)))
        .unwrap_or_default();
    let what = format!(
        "the release {release} in {namespace} is {state} (revision {}{written})",
        rec.revision()
    );
    let Some(recovery) = recovery(rec) else {
        return Err(format!(
            "{what} and no earlier revision of it was deployed, so there is nothing safe to roll \
             back to. {}; nothing was changed",
            crate::helm::way_out(release, namespace, state)
        ));
    };
    if rec.helm_exited.is_some() || forced {
        return Ok(recovery);
    }
    Err(format!(
        "{what}: another helm operation is running or was interrupted, and this tool did not see \
         the helm that wrote it exit. Wait for it to finish and run again; or, when no helm \
         operation is running on it (on any machine; `helm history {release} -n {namespace}`), \
         run again with --recover-pending, which will {}; or clear it yourself: {}; nothing was \
         changed",
        recovery.describe(release, namespace),
        crate::helm::way_out(release, namespace, state)
            .trim_start_matches("Wait for it to finish and run again, or clear it: ")
    ))
}

/// The note left on a pending record whose helm this tool saw exit.
pub fn exited_note(outcome: &Result<serde_json::Value, String>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "helm upgrade --install, run by clearml-script (pid {}) on {}, exited {} at {}",
        std::process::id(),
        host.trim(),
        if outcome.is_ok() {
            "with success"
        } else {
            "with an error"
        },
        k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(history: &[(i64, &str)], note: bool) -> ReleaseRecord {
        let (rev, state) = *history.last().unwrap();
        ReleaseRecord {
            record: serde_json::json!({"version": rev, "info": {"status": state}}),
            secret: format!("sh.helm.release.v1.r.v{rev}"),
            age_secs: Some(7300),
            helm_exited: note.then(|| "exited".to_string()),
            history: history.iter().map(|(r, s)| (*r, s.to_string())).collect(),
        }
    }

    #[test]
    fn a_pending_upgrade_rolls_back_to_the_last_deployed_revision() {
        let rec = record(
            &[
                (1, "superseded"),
                (2, "deployed"),
                (3, "failed"),
                (4, "pending-upgrade"),
            ],
            true,
        );
        assert_eq!(
            decide("r", "n", &rec, false),
            Ok(Recovery::Rollback { to: 2 })
        );
    }

    #[test]
    fn the_revision_helm_3_marked_superseded_before_it_failed_is_the_one_rolled_back_to() {
        let rec = record(&[(1, "superseded"), (2, "pending-upgrade")], true);
        assert_eq!(
            decide("r", "n", &rec, false),
            Ok(Recovery::Rollback { to: 1 })
        );
    }

    #[test]
    fn a_first_install_left_pending_is_uninstalled() {
        let rec = record(&[(1, "pending-install")], true);
        assert_eq!(decide("r", "n", &rec, false), Ok(Recovery::Uninstall));
    }

    #[test]
    fn without_evidence_it_is_refused_with_the_age_and_the_flag() {
        let rec = record(&[(1, "deployed"), (2, "pending-upgrade")], false);
        let e = decide("r", "n", &rec, false).unwrap_err();
        assert!(e.contains("written 2h ago"), "{e}");
        assert!(e.contains("--recover-pending"), "{e}");
        assert!(e.contains("`helm rollback r 1 -n n`"), "{e}");
        assert!(e.contains("nothing was changed"), "{e}");
        assert_eq!(
            decide("r", "n", &rec, true),
            Ok(Recovery::Rollback { to: 1 })
        );
    }

    #[test]
    fn an_age_is_said_in_the_largest_unit_that_gives_at_least_two() {
        let said: Vec<String> = [0, 119, 120, 7199, 7200, 172_799, 172_800, 864_000]
            .into_iter()
            .map(age)
            .collect();
        assert_eq!(
            said,
            ["0s", "119s", "2min", "119min", "2h", "47h", "2d", "10d"]
        );
    }

    #[test]
    fn a_pending_upgrade_with_nothing_deployed_before_is_refused_even_when_forced() {
        let rec = record(&[(1, "failed"), (2, "pending-upgrade")], true);
        let e = decide("r", "n", &rec, true).unwrap_err();
        assert!(e.contains("nothing safe to roll back to"), "{e}");
    }
}
