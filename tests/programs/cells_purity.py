"""Run by tests/test_cells_scan.py in a fresh process: importing ``lstmlab.cells`` and running every cell
does no I/O (beyond reading installed libraries and lstmlab's own modules) and imports none of flax,
hydra, omegaconf, wandb, orbax or optax. Prints ``pure``; an assertion fails otherwise."""

import sys

import jax
import jax.numpy as jnp

jax.lax.scan(lambda c, x: (c + x, c), jnp.zeros(2), jnp.ones((3, 2)))  # warm up jax's own lazy I/O

AUDITED = ("open", "socket.connect", "subprocess.Popen", "os.system", "os.remove", "os.rename", "shutil.rmtree")
events = []


def audit(event, args):
    if event in AUDITED:
        mode = args[1] if event == "open" and len(args) > 1 and isinstance(args[1], str) else ""
        events.append((event, str(args[0]) if args else "", mode))


sys.addaudithook(audit)

import lstmlab.cells as cells  # noqa: E402  (after the audit hook, on purpose)

for name in cells.CELLS:
    params = cells.init(name, jax.random.key(0), 2, 4)  # even: the uRNN pairs its units
    cells.scan(name, params, jnp.ones((2, 1, 2)), seq_lengths=jnp.array([1]), reverse=True)
# Allowed: reading the installed libraries (jax imports some modules lazily) and lstmlab's own
# modules. Anything else (writes, data or config files, sockets, subprocesses) is I/O.
package = cells.__file__.rsplit("/", 2)[0]
installed = (sys.prefix, sys.base_prefix, package)
reads = [e for e in events if e[0] == "open" and e[1].startswith(installed) and not any(m in e[2] for m in "wax+")]
other = [e for e in events if e not in reads]
assert not other, other
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("flax", "hydra", "omegaconf", "wandb", "orbax", "optax"))
assert not bad, bad
print("pure")
