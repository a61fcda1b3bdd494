"""python -m rosenblatt.bench [NAME ...] [options]: run the named benchmarks (default: all)."""
import importlib
import sys

SUITES = ["gemm", "conv", "rnn", "train"]


def main(argv):
    names = [a for a in argv if not a.startswith("-")] or SUITES
    options = [a for a in argv if a.startswith("-")]
    if names == ["all"]:
        names = SUITES
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        sys.exit(f"rosenblatt.bench: unknown benchmark {unknown[0]!r}; choose from {', '.join(SUITES)} or all")
    from rosenblatt.bench.common import machine_description, peers_description, try_import_torch

    print(machine_description())
    print(peers_description(try_import_torch()))
    for name in names:
        try:
            module = importlib.import_module(f"rosenblatt.bench.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"rosenblatt.bench.{name}":
                raise
            print(f"== {name}: not available in this build")
            continue
        module.main(options)


if __name__ == "__main__":
    main(sys.argv[1:])
