"""The command line of every entry point: strict `--name value` arguments, our own --help, one-line errors.

An entry point is a function of its options (`run_cli(build)`), or a stage's `main(args: Args)`, whose options are the
fields of its `Args` dataclass (`run_cli(main)`): the command line builds the dataclass, tests build it directly.
"""
import dataclasses
import inspect
import sys

from utils.io import UserError, fail


def comma_list(value, flag: str) -> list[str]:
    """A list-valued CLI argument from the shell: "a,b" arrives from fire as the tuple ('a', 'b'), "a" as a string."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    items = [str(x).strip() for x in items if str(x).strip()]
    if not items:
        raise UserError(f"{flag} is empty: give one or more comma-separated values")
    return items


def args_class(fn):
    """The dataclass of a `main(args: Args)` entry point, or None for a function of its options."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) == 1 and dataclasses.is_dataclass(params[0].annotation):
        return params[0].annotation
    return None


def cli_options(fn) -> dict:
    """{name: inspect.Parameter} of the options the command line takes: `fn`'s parameters or its Args' fields."""
    return dict(inspect.signature(args_class(fn) or fn).parameters)


def check_cli_args(fn, argv: list[str]) -> None:
    """Only `--name value` (or `--name=value`, or a bare `--name` for a boolean) for names `fn` takes: fire would give a
    stray value to the next parameter (`--topk 1 5` makes 5 a path) and pass an unknown flag on as text."""
    params = cli_options(fn)
    flags = sorted(f"--{name}" for name in params)
    usage = f"expected --name value for each of {', '.join(flags)} (see --help)"
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise UserError(f"unexpected argument {token!r}: {usage}")
        name, has_value = token[2:].split("=", 1)[0].replace("-", "_"), "=" in token
        if name not in params:
            raise UserError(f"unknown option {token.split('=', 1)[0]}: {usage}")
        is_bool = params[name].annotation is bool
        if not has_value and not (is_bool and (i + 1 == len(argv) or argv[i + 1].startswith("--"))):
            if i + 1 == len(argv):
                raise UserError(f"option --{name} needs a value: {usage}")
            i += 1  # its value
        i += 1


def cli_help(fn) -> str:
    """An entry point's --help: its module's docstring (the usage line first), then every option in the one form
    the CLI accepts (--name value) with its default."""
    doc = (fn.__globals__.get("__doc__") or "").strip()
    options = [f"  --{name} {'VALUE (required)' if p.default is p.empty else f'(default: {p.default!r})'}"
               for name, p in cli_options(fn).items()]
    return f"{doc}\n\noptions, each as --name value (a boolean may be a bare --name):\n" + "\n".join(options)


def run_cli(fn):
    """Run a fire CLI entry point with strict arguments (`check_cli_args`) and our own --help (`cli_help`: fire's
    lists required options as positional, which `check_cli_args` refuses); a UserError becomes one clear line and a
    non-zero exit."""
    import fire

    argv = sys.argv[1:]
    if any(a in ("--help", "-h") for a in argv):
        print(cli_help(fn))
        sys.exit(0)
    cls = args_class(fn)
    entry = fn
    if cls is not None:  # fire parses the options as the dataclass's own signature, then main gets the dataclass
        def entry(*values, **options):
            return fn(cls(*values, **options))

        entry.__signature__ = inspect.signature(cls)
    try:
        check_cli_args(fn, argv)
        fire.Fire(entry)
    except UserError as e:
        fail(str(e))
