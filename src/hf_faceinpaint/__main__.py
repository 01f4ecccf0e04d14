"""`python -m hf_faceinpaint`: the same command line as `hf-faceinpaint`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
