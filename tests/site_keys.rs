//! Unknown site keys: an error with a did-you-mean for a standard playbook, a warning for a
//! site's own script; free-form maps (`extra_values`) take any key. (The misspellings' exit
//! codes and places are in the bad-input table.)

use crate::common::{Test, repo};

fn example() -> String {
    repo().join("examples/site.yaml").display().to_string()
}

#[test]
fn keys_under_free_form_maps_pass() {
    Test::new()
        .file(
            "more.yaml",
            "extra_values:\n  apiserver:\n    anyChartKey: {nested: 1}\n\
             agent:\n  enabled: false\n  extra_values: {whatever: true}\n\
             sso:\n  provider: okta\n  client_id: id-1\n  client_secret: s-1\n  base_url: https://okta.example.com\n  \
             authorize_url: https://okta.example.com/a\n  access_token_url: https://okta.example.com/t\n  audience: https://okta.example.com/u\n  settings: {custom_claim: x}\n",
        )
        .args(["install.rhai", "--dry-run", "--values"])
        .arg(example())
        .args(["--values", "more.yaml"])
        .run()
        .success()
        .nowhere("unknown key");
}

#[test]
fn every_problem_is_reported_together_and_set_flags_are_checked_too() {
    Test::new()
        .file("more.yaml", "wiat: true\nui:\n  show_datasetz: true\n")
        .args(["install.rhai", "--dry-run", "--values"])
        .arg(example())
        .args([
            "--values",
            "more.yaml",
            "--set",
            "gateway.hots=gw.example.com",
        ])
        .run()
        .code(2)
        .stderr_has("3 unknown keys; nothing was changed")
        .stderr_has("more.yaml:1:7: unknown key `wiat`; did you mean `wait`?")
        .stderr_has(
            "more.yaml:3:18: unknown key `ui.show_datasetz`; did you mean `ui.show_datasets`?",
        )
        .stderr_has("--set gateway.hots: unknown key `gateway.hots`; did you mean `gateway.host`?");
}

#[test]
fn a_queue_entry_key_is_checked_too() {
    Test::new()
        .file(
            "more.yaml",
            "agent:\n  queues:\n    - {name: gpu, shm_size_gii: 8}\n",
        )
        .args(["install.rhai", "--dry-run", "--values"])
        .arg(example())
        .args(["--values", "more.yaml"])
        .run()
        .code(2)
        .stderr_has("unknown key `agent.queues[0].shm_size_gii`; did you mean `agent.queues[0].shm_size_gi`?");
}

#[test]
fn a_sites_own_script_may_read_its_own_keys_and_others_get_a_warning() {
    Test::new()
        .file("more.yaml", "my_team: ml\nmy_tema: ml\n")
        .script("log(site.my_team);")
        .args(["--dry-run", "--values"])
        .arg(example())
        .args(["--values", "more.yaml"])
        .run()
        .success()
        .nowhere("`my_team`")
        .stderr_has("warning: more.yaml:2:10: unknown key `my_tema`");
}
