//! The deployment examples under `deploy/`: they parse, and every scansync flag and
//! variable they use is one the binary has (nothing here can apply them to a cluster).

use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scansync")).args(args).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Checks the command line and environment a deployment gives the binary.
fn check_invocation(file: &str, args: &[String], env: &[String]) {
    assert!(!args.is_empty(), "{file}: no command");
    let sub = args[0].as_str();
    let text = help(&[sub, "--help"]);
    for a in &args[1..] {
        let flag = a.split('=').next().unwrap();
        if flag.starts_with("--") {
            assert!(
                text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
                "{file}: `scansync {sub}` has no flag {flag}"
            );
        }
        assert_ne!(
            flag, "--restart",
            "{file}: --restart in a deployment starts the job over on every pod restart"
        );
    }
    for name in env {
        if name.starts_with("SCANSYNC_") || name == "DATABASE_URL" {
            assert!(
                text.contains(&format!("[env: {name}")),
                "{file}: `scansync {sub}` reads no variable {name}"
            );
        }
    }
}

#[test]
fn the_kubernetes_backfill_job_parses_and_uses_only_flags_the_binary_has() {
    let file = "kubernetes/backfill-job.yaml";
    let text = std::fs::read_to_string(deploy().join(file)).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["kind"].as_str(), Some("Job"));
    assert!(v["spec"]["parallelism"].as_u64().unwrap() > 1, "a backfill shared by several pods");
    assert!(v["spec"]["completions"].is_null(), "work-queue pattern: no completion count");
    let c = &v["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> =
        c["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let env: Vec<String> =
        c["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    check_invocation(file, &args, &env);
}

#[test]
fn the_aws_batch_array_job_parses_and_uses_only_flags_the_binary_has() {
    let file = "aws-batch/job-definition.json";
    let def: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy().join(file)).unwrap()).unwrap();
    let c = &def["containerProperties"];
    let args: Vec<String> =
        c["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let mut env: Vec<String> = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    env.extend(c["secrets"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()));
    check_invocation(file, &args, &env);
    let submit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy().join("aws-batch/submit-job.json")).unwrap())
            .unwrap();
    assert!(submit["arrayProperties"]["size"].as_u64().unwrap() > 1);
    assert_eq!(submit["jobDefinition"], def["jobDefinitionName"]);
}

fn yaml(file: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(deploy().join(file)).unwrap()).unwrap()
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn env_names(c: &serde_yaml::Value) -> Vec<String> {
    c["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_kubernetes_cronjob_and_deployment_parse_and_use_only_flags_the_binary_has() {
    let cron = yaml("kubernetes/cronjob.yaml");
    assert_eq!(cron["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
    let c = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    check_invocation("kubernetes/cronjob.yaml", &strings(&c["args"]), &env_names(c));
    let dep = yaml("kubernetes/deployment.yaml");
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(1), "one serve process per schema");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    check_invocation("kubernetes/deployment.yaml", &strings(&c["args"]), &env_names(c));
    // Liveness must not depend on the database; readiness is the data's health.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/livez"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    // The follower: one per table, the old pod gone (with its lock) before the new starts.
    let follow = yaml("kubernetes/follow-deployment.yaml");
    assert_eq!(follow["spec"]["replicas"].as_u64(), Some(1), "one follower per table");
    assert_eq!(follow["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
    let c = &follow["spec"]["template"]["spec"]["containers"][0];
    check_invocation("kubernetes/follow-deployment.yaml", &strings(&c["args"]), &env_names(c));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/livez"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
}

#[test]
fn the_systemd_units_run_commands_the_binary_has() {
    for file in
        ["systemd/scansync.service", "systemd/scansync-sync.service", "systemd/scansync-follow.service"]
    {
        let text = std::fs::read_to_string(deploy().join(file)).unwrap();
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
        let args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_string).collect();
        check_invocation(file, &args, &[]);
    }
    let timer = std::fs::read_to_string(deploy().join("systemd/scansync-sync.timer")).unwrap();
    assert!(timer.contains("OnCalendar="));
}

#[test]
fn the_alert_rules_parse_and_name_only_metrics_serve_exports() {
    let rules = yaml("prometheus/alerts.yml");
    let exported = scansync::metrics::Metrics::new().encode();
    let mut checked = 0;
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("scansync_"))
        {
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(
                exported.contains(&format!("# TYPE {base} ")),
                "alert {:?} uses {name}, which serve does not export",
                rule["alert"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked}");
}

#[test]
fn the_iam_policy_grants_exactly_the_calls_scansync_makes() {
    let text = std::fs::read_to_string(deploy().join("aws/iam-policy.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut actions: Vec<String> = v["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()))
        .collect();
    actions.sort();
    // The SDK calls in src/: Query (source/dynamodb.rs), DescribeTable, DescribeStream,
    // GetShardIterator, GetRecords (stream/aws.rs: follow), GetParameter/PutParameter
    // (checkpoint/ssm.rs: the checkpoint, and GetParameter of --database-url-parameter),
    // GetObject/ListObjectsV2 (source/export.rs; ListBucket authorizes it).
    assert_eq!(
        actions,
        [
            "dynamodb:DescribeStream",
            "dynamodb:DescribeTable",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:Query",
            "s3:GetObject",
            "s3:ListBucket",
            "ssm:GetParameter",
            "ssm:GetParameter",
            "ssm:PutParameter"
        ]
    );
    for s in v["Statement"].as_array().unwrap() {
        let resource = s["Resource"].as_str().unwrap();
        // The only wildcards: the objects under the export prefix, and the table's stream
        // (its label changes when the stream is enabled again).
        assert!(
            !resource.contains('*')
                || resource.ends_with("/scans/*")
                || resource.ends_with("table/scans/stream/*"),
            "{resource} is wider than it needs"
        );
    }
    for (file, call) in [
        ("src/source/dynamodb.rs", ".query()"),
        ("src/stream/aws.rs", ".describe_table()"),
        ("src/stream/aws.rs", ".describe_stream()"),
        ("src/stream/aws.rs", ".get_shard_iterator()"),
        ("src/stream/aws.rs", ".get_records()"),
        ("src/checkpoint/ssm.rs", ".get_parameter()"),
        ("src/checkpoint/ssm.rs", ".put_parameter()"),
        ("src/source/export.rs", ".get_object()"),
        ("src/source/export.rs", ".list_objects_v2()"),
    ] {
        let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        assert!(src.contains(call), "{file} no longer calls {call}: update the policy");
    }
}

#[test]
fn the_lambda_template_schedules_the_sync_and_a_verify_and_its_three_alarms_watch_what_the_function_emits() {
    let t = yaml("aws/lambda/template.yaml");
    let f = &t["Resources"]["SyncFunction"];
    assert_eq!(f["Type"].as_str(), Some("AWS::Serverless::Function"));
    let p = &f["Properties"];
    assert_eq!(p["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(p["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(p["ReservedConcurrentExecutions"].as_u64(), Some(1), "never two runs at once");
    let timeout = p["Timeout"].as_u64().unwrap();
    assert!(timeout <= 900, "Lambda's limit is 900 s");
    let vars = p["Environment"]["Variables"].as_mapping().unwrap();
    let env: Vec<String> = vars.keys().map(|k| k.as_str().unwrap().to_string()).collect();
    check_invocation("aws/lambda/template.yaml", &["sync".to_string()], &env);
    let stop =
        scansync::cli::values::parse_duration(vars["SCANSYNC_SHUTDOWN_TIMEOUT"].as_str().unwrap()).unwrap();
    assert!(stop.as_secs() * 4 < timeout, "the run must stop well before the timeout");
    assert!(vars.contains_key("SCANSYNC_MAX_WINDOW"), "bounded runs always fit the timeout");
    let schedule = p["Events"]["Hourly"]["Properties"]["Schedule"].as_str().unwrap();
    assert_eq!(schedule, "rate(1 hour)");
    // The daily verify: the same function, an event the handler reads as a verify.
    let verify = &p["Events"]["DailyVerify"]["Properties"];
    let input: serde_json::Value = serde_json::from_str(verify["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input["verify"]["days"], 3);

    // The role: the calls the sync makes, nothing else (the same as aws/iam-policy.json
    // without the export reads, which only backfill makes).
    let mut actions: Vec<String> = p["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    actions.sort();
    assert_eq!(actions, ["dynamodb:Query", "ssm:GetParameter", "ssm:GetParameter", "ssm:PutParameter"]);

    let alarms: Vec<&serde_yaml::Value> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|r| &r["Properties"])
        .collect();
    assert_eq!(alarms.len(), 3);
    let errors = alarms.iter().find(|a| a["MetricName"].as_str() == Some("Errors")).unwrap();
    assert_eq!(errors["Namespace"].as_str(), Some("AWS/Lambda"));
    assert_eq!(errors["Period"].as_u64(), Some(300), "an error in any 5-minute window");
    assert_eq!(errors["Threshold"].as_u64(), Some(1));
    let stale = alarms.iter().find(|a| a["MetricName"].as_str() == Some("SuccessfulRuns")).unwrap();
    assert_eq!(
        stale["Period"].as_u64().unwrap() * stale["EvaluationPeriods"].as_u64().unwrap(),
        3 * 3600,
        "no successful run for 3 hours"
    );
    assert_eq!(stale["TreatMissingData"].as_str(), Some("breaching"), "no invocation at all is stale too");
    // The metric is one the function emits, under the dimension it emits it with.
    let line = scansync::lambda::emf_line("f", "succeeded", None);
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "scansync");
    let metric = stale["MetricName"].as_str().unwrap();
    assert!(directive["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == metric), "{metric}");
    assert_eq!(line[metric], 1);
    let dimension = stale["Dimensions"][0]["Name"].as_str().unwrap();
    assert_eq!(directive["Dimensions"][0][0], dimension);
    // A verify never counts as a successful sync; its divergent keys have an alarm of their own.
    let verify_line = scansync::lambda::verify_emf_line("f", "succeeded", 0);
    assert!(verify_line.get("SuccessfulRuns").is_none());
    let divergent = alarms.iter().find(|a| a["MetricName"].as_str() == Some("DivergentKeys")).unwrap();
    let directive = &verify_line["_aws"]["CloudWatchMetrics"][0];
    assert!(directive["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == "DivergentKeys"));
    assert_eq!(divergent["Threshold"].as_u64(), Some(1));
    assert_eq!(divergent["Dimensions"][0]["Name"].as_str(), directive["Dimensions"][0][0].as_str());
}
