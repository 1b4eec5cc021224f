"""`python -m harness runtime [--image IMAGE]`: what an entry's Python has, in an image or here.

The runtime is part of the contract (docs/submission-contract.md, "The runtime"): which Python,
torch and other packages run the entry. This command prints it for a runtime image (a
throwaway container with no network) or, without --image, for the interpreter the local runner
uses, so a participant can check before porting a recipe.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from harness.errors import RunnerError

PACKAGES = ("torch", "torchvision", "numpy", "PIL", "yaml")  # import names, in the contract's order
NAMES = {"PIL": "Pillow", "yaml": "PyYAML"}  # what the contract calls them
# torch.compile needs a C compiler on PATH (Triton's launcher on CUDA, Inductor's C++ on CPU); the
# bundled entry trains eagerly without one (submission/speed.py), other entries may not.
COMPILERS = ("gcc", "clang", "cc", "g++", "c++", "clang++")
PROBE = f"""
import importlib, json, shutil, sys
versions = {{}}
for name in {PACKAGES!r}:
    try:
        versions[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception:
        versions[name] = None
compile_ = versions["torch"] is not None and hasattr(importlib.import_module("torch"), "compile")
compiler = next((shutil.which(c) for c in {COMPILERS!r} if shutil.which(c)), None)
print(json.dumps({{"python": sys.version.split()[0], "packages": versions, "torch_compile": compile_,
                  "c_compiler": compiler}}))
"""


def describe_local() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def describe_image(image: str) -> dict:
    try:
        import docker

        client = docker.from_env(timeout=120)
        output = client.containers.run(
            image, ["python3", "-c", PROBE], entrypoint=[], network_mode="none", remove=True, stdout=True, stderr=False
        )
    except Exception as exc:  # no SDK, no engine, no such image
        raise RunnerError(
            f"could not run {image!r} to describe it ({exc}); is the engine up and the image built "
            "(make image-cpu, make image-cuda)?"
        ) from None
    return json.loads(output.decode().strip().splitlines()[-1])


def table(runtime: dict) -> str:
    rows = [("Python", runtime["python"])] + [(NAMES.get(n, n), v or "absent") for n, v in runtime["packages"].items()]
    rows += [
        ("torch.compile", "yes" if runtime.get("torch_compile") else "no"),
        ("C compiler", runtime.get("c_compiler") or "absent"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def add_parser(commands) -> None:
    p = commands.add_parser("runtime", help="what an entry's Python has: in a runtime image, or here")
    p.add_argument(
        "--image",
        help="a runtime image, e.g. haet-runtime:cpu (default: this host's interpreter, which the local runner uses)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_runtime)


def cmd_runtime(args: argparse.Namespace, progress) -> int:
    runtime: dict | None = describe_image(args.image) if args.image else describe_local()
    print(json.dumps(runtime) if args.json else f"{args.image or 'this host (--runner local)'}\n{table(runtime)}")
    return 0
