//! Independent steps together (`parallel`): the plan shows the groups, a failing branch is
//! reported with the others' outcomes, Ctrl-C stops every branch between steps, and the
//! standard install (agent, shared Redis and gateway in one group) converges on a re-run.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use serde_json::Value;

use crate::common::{Test, demo_chart, repo};

const REDIS: &str =
    "agent:\n  redis:\n    enabled: true\n    password: shared-redis-password-1234\n";

/// The standard install with the agent, the gateway and the shared Redis.
fn install_args(state: &str) -> Vec<String> {
    let mut args = vec![
        "install.rhai".to_string(),
        "--values".into(),
        repo().join("examples/site.yaml").display().to_string(),
        "--values".into(),
        repo().join("examples/site-gpu.yaml").display().to_string(),
        "--values".into(),
        "redis.yaml".into(),
    ];
    if !state.is_empty() {
        args.extend(["--sandbox".into(), "--sandbox-state".into(), state.into()]);
    }
    args
}

#[test]
fn the_plan_shows_the_parallel_group_of_the_install() {
    let t = Test::new().file("redis.yaml", REDIS).args(install_args(""));
    let text = t.arg("--dry-run").run();
    text.success()
        .stdout_has("     parallel group 1: agent, gateway, redis wait together\n")
        .stdout_has("  6. helm.repo_add name=bitnami ")
        .stdout_has("  8. [1:agent] helm.upgrade_install release=clearml-agent ")
        .stdout_has("[1:gateway] helm.upgrade_install release=clearml-ttr ")
        .stdout_has("[1:redis] helm.upgrade_install release=redis ")
        .stdout_has("[1:agent] clearml.create_queue name=GPUshm ");
    let json = Test::new()
        .file("redis.yaml", REDIS)
        .args(install_args(""))
        .args(["--dry-run", "--output", "json"])
        .run();
    json.success();
    let doc = json.json();
    let actions = doc["actions"].as_array().unwrap();
    let place = |release: &str| -> Value {
        actions
            .iter()
            .find(|a| a["kind"] == "helm.upgrade_install" && a["release"] == release)
            .unwrap_or_else(|| panic!("no release {release}"))["parallel"]
            .clone()
    };
    // the control plane comes first, alone; the three others wait together after it
    assert_eq!(place("clearml"), Value::Null);
    for (release, branch) in [
        ("clearml-agent", "agent"),
        ("clearml-ttr", "gateway"),
        ("redis", "redis"),
    ] {
        assert_eq!(
            place(release),
            serde_json::json!({"group": 1, "branch": branch}),
            "{release}"
        );
    }
    let cp = actions
        .iter()
        .position(|a| a["release"] == "clearml")
        .unwrap();
    // the Redis's repository is added before the group (helm rewrites its repository files in
    // place: a branch's helm reading them meanwhile finds no repository); then only the group
    let kinds: Vec<&str> = actions[cp + 1..cp + 3]
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["helm.repo_add", "helm.repo_update"], "{doc:#}");
    assert!(
        actions[cp + 1..cp + 3]
            .iter()
            .all(|a| a["parallel"].is_null()),
        "{doc:#}"
    );
    assert!(
        actions[cp + 3..]
            .iter()
            .all(|a| a["parallel"]["group"] == 1),
        "{doc:#}"
    );
}

#[test]
fn parallel_answers_each_branch_in_order_and_refuses_what_is_not_a_closure() {
    Test::new()
        .script(
            "let l = parallel([|| 1, || { ensure_namespace(\"b\"); 2 }]);\n\
             let m = parallel(#{ x: || \"a\", y: || l[0] + l[1] });\n\
             print(`${l} ${m.x} ${m.y}`);\n",
        )
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("[1, 2] a 3\n")
        .stdout_has(
            "     parallel group 1: 2 wait together\n  1. [1:2] kube.ensure_namespace name=b\n",
        );
    // a group inside a branch: its branches named under the enclosing one
    Test::new()
        .script("parallel(#{ outer: || parallel(#{ inner: || ensure_namespace(\"n\") }) });\n")
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has(
            "     parallel group 2: outer/inner wait together\n  1. [2:outer/inner] kube.ensure_namespace name=n\n",
        );
    Test::new()
        .script("parallel([|| 1, 2]);\n")
        .arg("--dry-run")
        .run()
        .code(2)
        .stderr_has("parallel: the branch 2 is a int, not a closure: write it as `|| …`");
}

#[test]
fn a_failing_branch_is_reported_with_the_other_branches_outcomes_and_a_rerun_converges() {
    let t = Test::new().file("redis.yaml", REDIS).helm(3);
    let first = t
        .command()
        .args(install_args("state"))
        // the API fails helm's look-up of the gateway's Deployment: that branch fails at once
        .args([
            "--fault",
            "GET:/apis/apps/v1/namespaces/clearml-agents/deployments/clearml-ttr:1:500",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    for part in [
        "parallel group 1: the branch gateway failed as above",
        "the branch agent finished",
        "the branch redis finished",
        "clearml-agents/clearml-agent revision 1: deployed",
        "redis-shared/redis revision 1: deployed",
        "queue GPUshm: created",
        "a re-run continues from the cluster's state",
    ] {
        assert!(stderr.contains(part), "no {part:?} in:\n{stderr}");
    }
    // the fault gone, the re-run finishes the gateway and leaves the rest as it is
    let again = t.command().args(install_args("state")).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    for part in [
        "chart clearml-agent in clearml-agents: unchanged (revision 1), not upgraded",
        "chart redis in redis-shared: unchanged (revision 1), not upgraded",
        // helm stopped before it stored a release: the re-run installs it
        "clearml-agents/clearml-ttr revision 1: deployed",
        "queue GPUshm: already there",
    ] {
        assert!(stderr.contains(part), "no {part:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("chart clearml-ttr in clearml-agents: unchanged"));
}

#[test]
fn the_install_with_slow_workloads_converges_on_a_rerun() {
    let t = Test::new().file("redis.yaml", REDIS).helm(3);
    for run in 0..2 {
        let out = t
            .command()
            .args(install_args("state"))
            .args(["--fault", "ready-after:300"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "run {run}:\n{stderr}");
        for release in [
            "clearml/clearml",
            "clearml-agents/clearml-agent",
            "clearml-agents/clearml-ttr",
            "redis-shared/redis",
        ] {
            assert!(
                stderr.contains(&format!("{release} revision 1: deployed")),
                "run {run}: {release}:\n{stderr}"
            );
        }
        assert!(stderr.contains("StatefulSet redis-shared/redis-master: 1/1 ready"));
    }
}

/// Two branches each install the demo chart (waiting for its workloads, which the sandbox
/// keeps unready for a while) and then take one more step. Ctrl-C while both wait: both helm
/// processes finish, neither branch takes its next step, exit 130.
#[test]
fn ctrl_c_stops_every_branch_between_steps() {
    let chart = demo_chart();
    let branch = |ns: &str| {
        format!(
            "|| {{ install_chart(\"demo-{ns}\", \"{chart}\", #{{ namespace: \"{ns}\", wait: true }}); \
             ensure_namespace(\"after-{ns}\") }}"
        )
    };
    let t = Test::new()
        .script(&format!(
            "parallel(#{{ a: {}, b: {} }});\nensure_namespace(\"last\");\n",
            branch("a"),
            branch("b")
        ))
        .helm(3);
    let mut cmd = t.command();
    cmd.args(["--sandbox", "--fault", "ready-after:4000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut started = 0;
    while started < 2 {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("ended early:\n{}", seen.join("\n")))
            .unwrap();
        if line.contains("helm.upgrade_install") {
            started += 1;
        }
        seen.push(line);
    }
    // "→ step 2" is said before its helm starts: wait until both helm processes run, or the
    // Ctrl-C could come before the second one (then one step is started, correctly, not two)
    let helms = |parent: u32| {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // pid (comm) state ppid …
                let (comm, rest) = stat.split_once(") ").unwrap_or_default();
                comm.ends_with("(helm") && rest.split(' ').nth(1) == Some(&parent.to_string())
            })
            .count()
    };
    let since = std::time::Instant::now();
    while helms(child.id()) < 2 {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(60),
            "the two helm processes never ran:\n{}",
            seen.join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // both helm processes wait now; the terminal's Ctrl-C goes to the whole foreground group
    let ok = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("→ step 1: [a] helm.upgrade_install"),
        "{stderr}"
    );
    assert!(
        stderr.contains("→ step 2: [b] helm.upgrade_install"),
        "{stderr}"
    );
    assert!(!stderr.contains("kube.ensure_namespace"), "{stderr}");
    assert!(
        stderr.contains("2 steps finished before the interruption"),
        "{stderr}"
    );
    assert!(
        stderr.contains("parallel group 1: the branch a stopped as above"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the branch b stopped: interrupted"),
        "{stderr}"
    );
}

/// Two branches call a method on a variable both capture: the first keeps it while its chart
/// waits, so the second cannot use it. The error says why and what to write instead; the same
/// branches calling a function with it (a copy) install both charts.
#[test]
fn a_method_on_a_captured_value_in_two_branches_is_explained() {
    let chart = demo_chart();
    let run = |call: &str| {
        Test::new()
            .script(&format!(
                "fn map.demo_in(ns) {{ install_chart(\"demo-\" + ns, this.chart, #{{ namespace: ns, wait: true }}) }}\n\
                 fn demo_in(c, ns) {{ c.demo_in(ns) }}\n\
                 let c = #{{ chart: \"{chart}\" }};\n\
                 let r = parallel(#{{ a: || {call}\"a\"), b: || {call}\"b\") }});\n\
                 print(`${{r.a.status}} ${{r.b.status}}`);\n"
            ))
            .helm(3)
            .args(["--sandbox", "--fault", "ready-after:500"])
            .run()
    };
    run("c.demo_in(")
        .code(1)
        .stderr_has("in a `parallel` group, a method called on a variable the branches capture")
        .stderr_has("pass it to a function instead (`f(site)` for `site.f()`)")
        .stderr_has("the branch a finished");
    run("demo_in(c, ")
        .success()
        .stdout_has("deployed deployed\n");
}

/// A branch that fails on bad input, not on a step, while another branch's step finished: the
/// run says to fix the problem, not that a step failed part-way (exit 2).
#[test]
fn a_branch_refused_as_bad_input_is_not_a_failed_step() {
    Test::new()
        .script(
            "parallel(#{ a: || { let v = kube_version();\n\
             if v.starts_with(\"v\") { validate(site, #{}, [\"the cluster is too old\"]); } },\n\
             b: || ensure_namespace(\"b\") });\n",
        )
        .arg("--sandbox")
        .run()
        .code(2)
        .stderr_has("  - the cluster is too old\n")
        .stderr_has("  - the branch b finished\n")
        .stderr_has("1 step finished before the failure; fix the problem above, then run again\n");
}

/// `exit()` in a branch ends the script as it does outside a group: no "NOT AN ERROR", no
/// failure, and nothing after the group runs.
#[test]
fn exit_in_a_branch_ends_the_script_as_outside_a_group() {
    Test::new()
        .script(
            "parallel([|| { ensure_namespace(\"a\"); exit(); }, || ensure_namespace(\"b\")]);\n\
             ensure_namespace(\"c\");\n",
        )
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("kube.ensure_namespace name=b")
        .nowhere("NOT AN ERROR")
        .nowhere("name=c");
}
