"""One compose stack per module, built and started on a real Docker engine.

No engine is a failure that says why, never a skip: .ci/run starts one with
../shared/tools/container-engine, and a machine without it has not tested
the deployment."""

from __future__ import annotations

import pytest

from tests.deploy.stack import ENGINE_SCRIPT, Stack, copy_tree, engine_problem


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    problem = engine_problem()
    if problem:
        pytest.fail(f"tests/deploy need a Docker engine with Compose v2 and {problem}; "
                    f"start one with {ENGINE_SCRIPT} (.ci/run does)", pytrace=False)
    root = tmp_path_factory.mktemp("clone")
    copy_tree(root)
    assert not (root / ".env").exists()
    s = Stack(root)
    try:
        # Cold: no layer of an earlier build is used (the base images are local).
        s.timed("build, cold (no cache)", "build", "--no-cache", "init", timeout=900)
        # Warm: a code change rebuilds the layers of the code alone.
        with (root / "gateway" / "__init__.py").open("a") as f:
            f.write("# changed\n")
        s.timed("build, warm (a code change)", "build", "init", timeout=900)
        s.dangling_before = s.images_of_project(dangling=True)
        s.up_output = s.timed("up --build until every service is healthy",
                              "up", "--build", "--detach", "--wait", "--wait-timeout", "240",
                              timeout=400)
        s.dangling_after = s.images_of_project(dangling=True)
        yield s
    finally:
        s.remove_everything()
        print(f"\ndeploy figures ({s.project}):")
        for name, value in s.figures.items():
            print(f"  {name}: {value}")
