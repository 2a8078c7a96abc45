//! The command line: bad input is refused before any AWS call, with exit 2 and a message naming
//! the option and the rule; help explains each command with an example.

use super::harness::Account;

#[test]
fn invalid_suffixes_are_refused_with_exit_2_and_no_aws_call() {
    let acct = Account::new();
    let long = "a".repeat(40);
    let cases: &[(&str, &str)] = &[
        ("QA", "lowercase"),
        ("q_a", "lowercase"),
        ("1qa", "start with a lowercase letter"),
        ("", "empty"),
        (&long, "at most"),
        ("q--a", "consecutive hyphens"),
        ("qa-", "end with a hyphen"),
        ("-qa", "start with a lowercase letter"),
        ("q a", "lowercase"),
        ("qä", "lowercase"),
        ("qa.1", "lowercase"),
        ("s3alias", "-s3alias"),
    ];
    for (suffix, rule) in cases {
        for command in ["up", "plan", "status", "destroy"] {
            // `--suffix=VALUE`, so that a value starting with '-' reaches tapctl's own check.
            let flag = format!("--suffix={suffix}");
            let mut args = vec![command, flag.as_str()];
            if command == "destroy" {
                args.push("--yes");
            }
            let run = acct.run(&args);
            assert_eq!(run.code, 2, "{command} --suffix {suffix:?} must exit 2: {}", run.stderr);
            assert!(run.stderr.contains("--suffix"), "the message must name the option: {}", run.stderr);
            assert!(
                run.stderr.contains(rule),
                "the message for {suffix:?} must state the rule ({rule}): {}",
                run.stderr
            );
        }
    }
    assert!(acct.proxy.calls().is_empty(), "AWS was called: {:?}", acct.proxy.calls());
    assert_eq!(
        std::fs::read_dir(acct.state_dir.path()).unwrap().count(),
        0,
        "no state may be written for a refused run"
    );
}

#[test]
fn other_bad_options_are_refused_naming_the_option() {
    let acct = Account::new();
    let file = acct.state_dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["up", "--suffix", "qa", "--region", "moon-base"], "--region"),
        (vec!["up", "--suffix", "qa", "--region", "US-EAST-1"], "--region"),
        (vec!["up", "--suffix", "qa", "--parallelism", "0"], "--parallelism"),
        (vec!["up", "--suffix", "qa", "--parallelism", "1000"], "--parallelism"),
        (vec!["up", "--suffix", "qa", "--vpc-cidr", "10.0.0.0/8"], "--vpc-cidr"),
        (vec!["up", "--suffix", "qa", "--vpc-cidr", "8.8.0.0/16"], "--vpc-cidr"),
        (vec!["up", "--suffix", "qa", "--kms-deletion-window-days", "3"], "--kms-deletion-window-days"),
        (vec!["up", "--suffix", "qa", "--cost-center", "a|b"], "--cost-center"),
        (vec!["up"], "--suffix"),
    ];
    for (args, option) in cases {
        let run = acct.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(option), "{args:?} must name {option}: {}", run.stderr);
    }
    let run = acct.run(&["up", "--suffix", "qa", "--state-dir", file.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--state"), "{}", run.stderr);
    assert!(acct.proxy.calls().is_empty(), "AWS was called: {:?}", acct.proxy.calls());
}

#[test]
fn each_command_lists_its_own_options_apart_and_only_those_that_apply() {
    let acct = Account::new();
    let help = |args: &[&str]| acct.ok(args).stdout;
    let build = help(&["build", "--help"]);
    for absent in ["--suffix", "--vpc-cidr", "--endpoint-url", "--lock-timeout", "--parallelism"] {
        assert!(!build.contains(absent), "build ignores {absent}, so its help must not list it:\n{build}");
    }
    let status = help(&["status", "--help"]);
    assert!(!status.contains("--lock-timeout") && !status.contains("--vpc-cidr"), "{status}");
    assert!(status.contains("Stack selection:") && status.contains("--wide"), "{status}");
    let up = help(&["up", "--help"]);
    for heading in ["Options:", "Stack selection:", "Stack settings", "Run:", "Output:"] {
        assert!(up.contains(heading), "up --help groups its options under {heading:?}:\n{up}");
    }
    // The usage line does not claim that --suffix (which TAPCTL_SUFFIX or `tapctl use` supply) is required.
    assert!(!up.lines().next().unwrap_or_default().contains("--suffix <"), "{up}");
    let top = help(&["--help"]);
    for example in ["tapctl shift --to green --weight 10", "tapctl status", "tapctl destroy", "tapctl use qa"] {
        assert!(top.contains(example), "top-level examples: {example:?}\n{top}");
    }
    assert!(help(&["shift-traffic", "--help"]).contains("--weight"), "the design card's name is an alias");
    assert!(acct.ok(&["version"]).stdout.starts_with(&format!("tapctl {}", env!("CARGO_PKG_VERSION"))));
    let completion = help(&["completions", "bash"]);
    assert!(completion.contains("shift-traffic") && completion.contains("--lock-timeout"), "bash completion");
    assert!(acct.proxy.calls().is_empty(), "help, version and completions call no AWS");
}

#[test]
fn every_command_explains_itself_with_an_example() {
    let acct = Account::new();
    for command in ["up", "plan", "status", "destroy", "restore"] {
        let run = acct.run(&[command, "--help"]);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Example"), "{command} --help lacks an example");
        assert!(run.stdout.contains(&format!("tapctl {command}")), "{command} --help example must show the command");
        assert!(run.stdout.contains("--suffix") && run.stdout.contains("--endpoint-url"), "global options are listed");
    }
}
