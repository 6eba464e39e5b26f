//! A template file that fails to render fails its task as in ansible-core: "Task failed: "
//! and the template's message, the task's line, then `<<< caused by >>>` naming the template
//! file (bramble adds its line, column and excerpt, which ansible-core leaves out).

mod common;

use common::Test;

fn project(template: &str) -> Test {
    Test::new()
        .file("templates/conf.j2", template)
        .file(
            "site.yml",
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: render\n      template:\n        src: conf.j2\n        dest: \"{{ playbook_dir }}/conf\"\n",
        )
        .file("hosts", "localhost ansible_connection=local\n")
        .arg("site.yml")
        .arg("-i")
        .arg("hosts")
}

#[test]
fn a_template_syntax_error_names_the_task_then_the_file_and_line() {
    let test = project("a\n{{ foo( }}\nc\n");
    let file = test.path("templates/conf.j2").display().to_string();
    let task = format!("Origin: {}:4:7", test.path("site.yml").display());
    let ours = test.bramble();
    ours.code(2)
        .stdout_has("[ERROR]: Task failed: Syntax error in template: ")
        .stdout_has(&format!("Task failed.\n{task}\n"))
        .stdout_has("<<< caused by >>>\n\nSyntax error in template: ")
        .stdout_has(&format!("Origin: {file}:2:9\n\n1 a\n2 {{{{ foo( }}}}\n"))
        .stdout_has("\"msg\": \"Task failed: Syntax error in template: ");
    let theirs = test.ansible();
    theirs
        .code(2)
        .stdout_has(&format!("Task failed.\n{task}\n"))
        .stdout_has(&format!("Origin: {file}\n"))
        .stdout_has("\"msg\": \"Task failed: Syntax error in template: ");
    assert!(!test.path("conf").exists());
}

#[test]
fn an_undefined_variable_in_a_template_is_its_message() {
    let test = project("one\nvalue: {{ missing_var }}\n");
    let file = test.path("templates/conf.j2").display().to_string();
    let fatal = "\"msg\": \"Task failed: 'missing_var' is undefined\"";
    test.bramble()
        .code(2)
        .stdout_has(&format!(
            "<<< caused by >>>\n\n'missing_var' is undefined\nOrigin: {file}:2:11\n"
        ))
        .stdout_has(fatal);
    test.ansible().code(2).stdout_has(fatal);
}
