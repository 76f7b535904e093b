"""Developer sessions. `nox` runs tests, lint and typecheck; `nox -s bench|gpu|postgres|slurm|browser` on demand.

Every install goes through constraints.txt: an unpinned torch pulls a multi-GB CUDA stack.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


def _install(session: nox.Session) -> None:
    session.install("-c", "constraints.txt", "-e", ".[dev]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """CPU unit and integration tests (pass pytest options after --)."""
    _install(session)
    session.run("pytest", "-n", "2", "-q", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over mlrd_core and suite."""
    _install(session)
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: fused losses vs the authors' per-term operations (ratios measured in one run)."""
    _install(session)
    session.run("python", "-m", "suite", "bench", *(session.posargs or ["losses"]))


NO_CUDA = "no CUDA device: skipping the gpu session"
#: Table 7 without the NYUv2 files: synthetic scenes generated at 144x192 (cheap), resized to the paper's 288x384.
TABLE7_SYNTHETIC = [
    "--set",
    "defaults.dataset=synthetic",
    "--set",
    "defaults.dataset_options={ height = 144, width = 192, train = { length = 200 }, test = { length = 50 } }",
    "--set",
    "defaults.protocol=synthetic",
    "--set",
    "num_workers=8",
]


@nox.session(python=PYTHON, default=False)
def gpu(session: nox.Session) -> None:
    """CUDA: smoke tests (pytest -m gpu), `bench train` on CUDA and CPU, the Table 7 timing spec. Skips without CUDA."""
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists():
        session.skip(NO_CUDA)
    _install(session)
    check = "import torch; print(torch.cuda.is_available(), torch.__version__)"
    probe = session.run("python", "-c", check, silent=True)
    available, _, version = str(probe).strip().splitlines()[-1].partition(" ")
    if available != "True":
        session.skip(f"{NO_CUDA} (torch {version} in the session sees no GPU)")
    session.run("pytest", "-m", "gpu", "-q", "-rs", *session.posargs)
    session.run("python", "-m", "suite", "bench", "train", "--repeats", "10")
    results = Path(session.create_tmp()).resolve() / "table7"
    shutil.rmtree(results, ignore_errors=True)
    data = [] if Path("data/nyu").exists() else TABLE7_SYNTHETIC
    session.run("python", "-m", "suite", "run", "specs/table7.toml", "--results", str(results), *data)


def _postgres_url(output: object) -> str:
    """The URL line that tools/postgres_throwaway.sh printed."""
    return [line for line in str(output).splitlines() if line.startswith("postgresql")][-1]


@nox.session(python=PYTHON, default=False)
def postgres(session: nox.Session) -> None:
    """The store on PostgreSQL: a throwaway server, the store tests and a CPU-sized demo run; the server is stopped
    and deleted at the end, pass or fail (tools/postgres_throwaway.sh, docs/cluster.md)."""
    session.install("-c", "constraints.txt", "-e", ".[dev,postgres]")
    tmp = Path(session.create_tmp()).resolve()
    script = ["bash", "tools/postgres_throwaway.sh"]
    env = {"MLRD_PG_STATE": str(tmp / "postgres.env")}
    session.run(*script, "stop", env=env, external=True)  # a server that an interrupted session left behind
    try:
        session.run(*script, "start", env=env, external=True)
        test_url = _postgres_url(session.run(*script, "createdb", "mlrd_test", env=env, external=True, silent=True))
        demo_url = _postgres_url(session.run(*script, "createdb", "mlrd_demo", env=env, external=True, silent=True))
        session.run(
            "pytest",
            "-q",
            "-rs",
            "tests/test_store.py",
            "tests/test_postgres_e2e.py",
            *session.posargs,
            env={"MLRD_TEST_POSTGRES_URL": test_url},
        )
        results = tmp / "results"
        shutil.rmtree(results, ignore_errors=True)  # run folders of an earlier session would be resumed
        cpu_sized = ["--set", "epochs=2", "--set", "seeds=[0]"]
        demo = ["specs/demo.toml", "--db", demo_url, "--results", str(results), *cpu_sized]
        session.run("python", "-m", "suite", "run", *demo)
        session.run("python", "-m", "suite", "table", *demo)
    finally:
        session.run(*script, "stop", env=env, external=True)


@nox.session(python=PYTHON, default=False)
def slurm(session: nox.Session) -> None:
    """SLURM: a single-node cluster (tools/slurm_single_node.sh), the SLURM tests (a forced timeout/requeue that
    resumes, a killed coordinator, Ctrl-C) and the CPU-sized demo on it; stops the cluster it started, pass or fail."""
    session.install("-c", "constraints.txt", "-e", ".[dev,slurm]")
    script = ["bash", "tools/slurm_single_node.sh"]
    conf = str(session.run(*script, "env", external=True, silent=True)).strip().rpartition("SLURM_CONF=")[2]
    env = {"SLURM_CONF": conf, "MLRD_REQUIRE_SLURM": "1"}
    # a cluster that is already up (a developer's) is used and left running; otherwise this session owns one
    status = session.run(*script, "status", external=True, silent=True, success_codes=[0, 3])
    started = "stopped" in str(status)
    try:
        if started:
            session.run(*script, "start", external=True)
        session.run("pytest", "-q", "-rs", "-m", "slurm", "tests/test_slurm.py", *session.posargs, env=env)
        results = Path(session.create_tmp()).resolve() / "slurm-demo"
        shutil.rmtree(results, ignore_errors=True)  # run folders of an earlier session would be resumed
        demo = ["specs/demo.toml", "--results", str(results), "--set", "epochs=2", "--set", "seeds=[0]"]
        session.run("python", "-m", "suite", "run", *demo, "--executor", "slurm", env=env)
        session.run("python", "-m", "suite", "status", *demo, env=env)
    finally:
        if started:
            session.run(*script, "stop", external=True)


#: Debian's packages behind the browser tests: the browser and the WebDriver that Selenium drives.
BROWSER_PACKAGES = ("chromium", "chromium-driver")


@nox.session(python=PYTHON, default=False)
def browser(session: nox.Session) -> None:
    """The HTML report in a real browser: installs Debian's chromium and chromium-driver with apt-get when missing,
    then runs the browser tests (pytest -m browser: a tiny spec end to end, its report.html opened from file://)."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        if shutil.which("apt-get") is None:
            session.error("chromium or chromedriver is missing and there is no apt-get to install them")
        apt = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", env=apt, external=True)
        session.run("apt-get", "install", "-y", "-qq", *BROWSER_PACKAGES, env=apt, external=True)
    _install(session)
    # MLRD_REQUIRE_BROWSER=1: a browser test that cannot find chromium fails instead of skipping
    session.run("pytest", "-m", "browser", "-n", "0", "-q", "-rs", *session.posargs, env={"MLRD_REQUIRE_BROWSER": "1"})
