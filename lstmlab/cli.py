"""The command line: ``python -m lstmlab +experiment=NAME [overrides]``. The only module that knows Hydra.

Configs live in the top-level ``conf/`` (shipped inside the wheel as ``lstmlab/conf``), so the command
works from any directory. The run directory is ``hydra.run.dir``; running the same command with the
same run directory resumes it. Bad input ends with one line on stderr and exit status 2 (set
``HYDRA_FULL_ERROR=1`` for the traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3


def conf_dir() -> Path:
    """``lstmlab/conf`` in an installed wheel, the repository's ``conf/`` in a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"lstmlab's Hydra configs are missing (looked in {package / 'conf'} and "
                            f"{package.parent / 'conf'}); reinstall the package")


def register_schema() -> None:
    from hydra.core.config_store import ConfigStore

    from lstmlab.config import Config

    ConfigStore.instance().store(name="lstmlab_schema", node=Config)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    print(f"lstmlab: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def run(cfg) -> dict:
    """The Hydra task: turn the composed config into a :class:`Config` and train."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from lstmlab.config import ConfigError
    from lstmlab.train import NonFiniteError, train_and_evaluate

    debug = os.environ.get("HYDRA_FULL_ERROR") == "1"
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = OmegaConf.to_object(cfg)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        return train_and_evaluate(config, run_dir, config_dict=resolved)
    except ConfigError as err:
        if debug:
            raise
        _fail(str(err))
    except NonFiniteError as err:
        if debug:
            raise
        _fail(str(err), EXIT_NONFINITE)


def main() -> None:
    import hydra

    register_schema()
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(run)
    app()


if __name__ == "__main__":
    main()
