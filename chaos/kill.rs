//! SIGKILL the operator at random moments while Plugins converge: afterwards every
//! Plugin is Ready and its children are exactly what the operator would write, none
//! orphaned, none duplicated.

use std::time::{Duration, Instant};

use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{client, install_crd};
use serde_json::json;

use crate::common::{
    Outcome, Random, check_children, count_ready, create_plugins, namespace, number,
    operator_config, operator_flags, paused_spec, progress, start_operator, wait_all_ready,
    wait_ready,
};

pub async fn run(binary: &str) -> Outcome {
    let plugins = number("--plugins", 300);
    let kills = number("--kills", 20);
    // Creation is spread over this long, and the kills fall in it.
    let spread = Duration::from_secs(number("--spread-seconds", 30) as u64);
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "kill").await;
    let api = ns.api::<Plugin>();
    let flags = operator_flags(&[]);
    let mut random = Random::new();
    let window = spread.as_secs_f64();
    let mut moments: Vec<Duration> = (0..kills)
        .map(|_| Duration::from_secs_f64(1.0 + random.unit() * window))
        .collect();
    moments.sort();

    let mut operator = start_operator(binary, &ns.name, &flags, &[]).await;
    let started = Instant::now();
    let creating = {
        let api = api.clone();
        let pace = spread / plugins as u32;
        tokio::spawn(async move { create_plugins(&api, "kill", plugins, pace, paused_spec).await })
    };
    let mut back_up = Vec::new();
    let mut ready_at_kill = Vec::new();
    for (round, moment) in moments.iter().enumerate() {
        tokio::time::sleep_until((started + *moment).into()).await;
        let (ready, total) = count_ready(&api).await.unwrap_or((0, 0));
        operator.kill();
        progress(&format!(
            "kill {}/{kills} at {:.1} s: SIGKILL the operator ({ready} / {total} created Plugins Ready)",
            round + 1,
            moment.as_secs_f64()
        ));
        ready_at_kill.push(ready);
        let restarted = Instant::now();
        operator = start_operator(binary, &ns.name, &flags, &[]).await;
        let ready_after = wait_ready(&operator, Duration::from_secs(60)).await;
        back_up.push(ready_after.map_or(f64::NAN, |_| restarted.elapsed().as_secs_f64()));
    }
    creating.await.expect("the Plugins are created");
    let last_restart = Instant::now();
    let converged = wait_all_ready(&api, plugins, Duration::from_secs(600)).await;
    let converged_after = converged.map(|_| last_restart.elapsed().as_secs_f64());
    progress(&format!(
        "all {plugins} Ready {:.1} s after the last restart",
        converged_after.unwrap_or(f64::NAN)
    ));
    // Let the caches settle, then compare with what the operator would write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let check = check_children(&client, &ns.name, &operator_config(&flags)).await;
    progress(&check.summary());
    let (ready, _) = count_ready(&api).await.unwrap_or((0, 0));
    let survived = if converged.is_some() && check.problems() == 0 && ready == plugins {
        kills
    } else {
        0
    };
    Outcome {
        fault: "operator SIGKILL".into(),
        injected: kills,
        survived,
        recovery_seconds: back_up.clone(),
        lost: check.problems() + (plugins - ready),
        details: json!({
            "plugins": plugins,
            "ready_at_each_kill": ready_at_kill,
            "converged_seconds_after_last_restart": converged_after,
            "children": check.children,
            "missing": check.missing.len(),
            "orphaned": check.orphaned.len(),
            "duplicated": check.duplicated.len(),
            "differing": check.differing.len(),
            "recovery": "seconds from SIGKILL to the new process's /readyz",
        }),
    }
}
