//! Rollout behaviour that the differential corpus cannot pin because ansible-playbook's own
//! output order varies from run to run: `strategy: free` and `forks`.

mod common;

use common::Test;

const HOSTS: &str = "[web]\nslow ansible_connection=local\nquick ansible_connection=local\n";

/// Under `free`, the quick host runs through its tasks while the slow one is still busy.
#[test]
fn free_lets_a_host_run_ahead() {
    let playbook = "- hosts: web\n  gather_facts: false\n  strategy: free\n  tasks:\n    \
                    - command: sleep {{ 2 if inventory_hostname == 'slow' else 0 }}\n    \
                    - debug: msg=second\n";
    let run = Test::new().file("hosts", HOSTS).file("site.yml", playbook).arg("site.yml");
    let run = run.arg("-i").arg("hosts").bramble();
    run.success();
    let quick_done = run.stdout.find("ok: [quick] =>").expect("quick ran its debug task");
    let slow_slept = run.stdout.find("changed: [slow]").expect("slow ran its command");
    assert!(quick_done < slow_slept, "quick waited for slow\n{}", run.stdout);
    assert!(run.recap("slow").contains("ok=2 "), "{}", run.stdout);
}

/// Under `linear` (the default), every host finishes a task before the next one starts.
#[test]
fn linear_waits_for_every_host() {
    let playbook = "- hosts: web\n  gather_facts: false\n  tasks:\n    \
                    - command: sleep {{ 1 if inventory_hostname == 'slow' else 0 }}\n    \
                    - debug: msg=second\n";
    let run = Test::new().file("hosts", HOSTS).file("site.yml", playbook).arg("site.yml");
    let run = run.arg("-i").arg("hosts").bramble();
    run.success();
    let quick_done = run.stdout.find("ok: [quick] =>").expect("quick ran its debug task");
    let slow_slept = run.stdout.find("changed: [slow]").expect("slow ran its command");
    assert!(slow_slept < quick_done, "quick ran ahead\n{}", run.stdout);
}

/// `-f 1` runs one host at a time: two one-second commands take two seconds.
#[test]
fn forks_bound_the_hosts_at_work() {
    let playbook = "- hosts: web\n  gather_facts: false\n  tasks:\n    - command: sleep 1\n";
    let test = Test::new().file("hosts", HOSTS).file("site.yml", playbook).arg("site.yml");
    let test = test.arg("-i").arg("hosts");
    let started = std::time::Instant::now();
    test.arg("-f").arg("1").bramble().success();
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "the hosts ran together");
}
