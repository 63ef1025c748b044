"""Parameters as people type them, with the node in its own process: every parameter through a params file and
through -p (off/on, 1 for 1.0, [] ...), and wrong values that must leave the node up and say why (they ended it with
InvalidParameterTypeException, exit 1, before)."""
from __future__ import annotations

from mllmseg_ros.tools.node_process import REPO, params_yaml, run_node
from params_as_typed import as_typed
from ros_harness import diagnostics_listener, get_parameters, values_of, wait_for



def test_every_parameter_as_typed_in_a_params_file(ros, seg_checkpoint, tmp_path):
    values = as_typed(str(seg_checkpoint))
    path = params_yaml(tmp_path / "params.yaml", {name: text for name, (text, _) in values.items()})
    with run_node(["--params-file", str(path)]) as process:
        client = ros.driver().node
        assert process.wait_for_output("model loaded"), process.stop()
        assert get_parameters(client, "/mllmseg_node", list(values)) == {name: meant for name, (_, meant) in values.items()}
    assert "Traceback" not in process.output and "[ERROR]" not in process.output, process.output


def test_every_parameter_as_typed_with_minus_p_in_a_namespace(ros, seg_checkpoint):
    """-p values as typed, over the shipped params file (keyed /**, so it applies in a namespace too)."""
    values = as_typed(str(seg_checkpoint))
    args = ["--params-file", str(REPO / "config" / "mllmseg.yaml"), "-r", "__ns:=/robot1"]
    for name, (text, _) in values.items():
        args += ["-p", f"{name}:={text}"]
    with run_node(args) as process:
        client = ros.driver().node
        assert process.wait_for_output("model loaded"), process.stop()
        assert get_parameters(client, "/robot1/mllmseg_node", list(values)) == {name: meant for name, (_, meant) in values.items()}
    assert "Traceback" not in process.output and "[ERROR]" not in process.output, process.output
    assert "no section applies" not in process.output


def test_wrong_values_are_said_once_each_and_the_node_stays_up(ros, seg_checkpoint, tmp_path):
    """Wrong values, a params file keyed by the node's name in a namespaced start (its values would be silently
    unused), a misspelt name and a file rcl cannot parse: one line each, ERROR on /diagnostics, no traceback, the
    process up (unconfigured: it runs with no value it was not given)."""
    keyed = params_yaml(tmp_path / "keyed.yaml", {"threshold": "0.3"}, key="mllmseg_node")
    broken = tmp_path / "broken.yaml"
    broken.write_text("/**:\n  ros__parameters:\n    threshold:\n")
    args = ["--params-file", str(keyed), "--params-file", str(broken), "-r", "__ns:=/robot1",
            "-p", f"model_path:={seg_checkpoint}", "-p", "autostart:=true", "-p", "diagnostics_period_s:=0.5",
            "-p", "threshold:=abc", "-p", "mode:=sometimes", "-p", "max_rate_hz:=-1", "-p", "min_depth_m:=-1.0",
            "-p", "tracking:=maybe", "-p", "thresold:=0.3"]
    wrong = ["threshold: 'abc' is not a number", "mode: 'sometimes' is not one of continuous, once",
             "max_rate_hz: -1 is out of range", "min_depth_m: -1.0 is out of range", "tracking: 'maybe' is not one of",
             f"params file '{broken}' could not be parsed"]
    with run_node(args) as process:
        statuses = diagnostics_listener(ros)
        assert wait_for(lambda: any(s.level == s.ERROR for s in statuses)), process.stop()
        status = next(s for s in statuses if s.level == s.ERROR)
        assert values_of(status)["state"] == "unconfigured"
        assert all(text in status.message for text in wrong), status.message
        assert "no section applies" in status.message and "-p thresold" in status.message
        assert process.process.poll() is None  # still up
    output = process.output
    assert "Traceback" not in output, output
    for text in wrong + [f"no section applies to this node /robot1/mllmseg_node", "-p thresold: not a parameter"]:
        assert output.count(text) == 1, (text, output)
    refused = next(line for line in output.splitlines() if "not configured: wrong values for" in line)
    assert all(name in refused for name in ("threshold", "mode", "max_rate_hz", "min_depth_m", "tracking"))


def test_without_a_model_the_node_says_why_from_the_start(ros):
    with run_node(["-p", "autostart:=true", "-p", "diagnostics_period_s:=0.5"]) as process:
        statuses = diagnostics_listener(ros)
        assert wait_for(lambda: statuses), process.stop()
        assert statuses[0].level == statuses[0].ERROR and "model_path is empty" in statuses[0].message
    assert "Traceback" not in process.output
