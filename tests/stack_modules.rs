//! The parts of the community.docker modules bramble does not implement stop the task with
//! a `not supported yet` message before any docker command runs (this machine has no
//! Docker), and unknown parameters are refused when the playbook loads.

mod common;

use common::Test;

fn play(task: &str) -> Test {
    let text = format!("- hosts: all\n  gather_facts: false\n  tasks:\n{task}");
    Test::new()
        .file("play.yml", &text)
        .file("hosts.ini", "[local]\nhere ansible_connection=local\n")
        .arg("play.yml")
        .arg("-i")
        .arg("hosts.ini")
}

#[test]
fn building_an_image_is_not_supported_yet() {
    let task = "    - community.docker.docker_image:\n        name: app\n        source: build\n";
    play(task).bramble().code(2).stdout_has("not supported yet: docker_image with source=build");
}

#[test]
fn a_container_on_several_networks_is_not_supported_yet() {
    let task = "    - community.docker.docker_container:\n        name: app\n        image: app:1\n        \
                networks:\n          - name: one\n          - name: two\n";
    play(task)
        .bramble()
        .code(2)
        .stdout_has("not supported yet: docker_container with several networks");
}

#[test]
fn compose_parameters_are_checked_when_the_playbook_loads() {
    let task = "    - community.docker.docker_compose_v2:\n        project_src: /srv\n        \
                project_sorce: x\n";
    play(task).bramble().code(4).stderr_has("did you mean `project_src`?");
}
