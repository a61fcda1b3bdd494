"""python -m rosenblatt.bench [NAME ...] [options]: run the named benchmarks (default: all)."""
import importlib
import sys

SUITES = ["gemm", "conv", "rnn", "train"]


def main(argv):
    names = [a for a in argv if not a.startswith("-")] or SUITES
    options = [a for a in argv if a.startswith("-")]
    if names == ["all"]:
        names = SUITES
    for name in names:
        if name not in SUITES:
            sys.exit(f"rosenblatt.bench: unknown benchmark {name!r}; choose from {', '.join(SUITES)} or all")
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
