from biapy_cls.cli import main

if __name__ == "__main__":
    raise SystemExit(main())  # `python -m biapy_cls` exits with the same status as `biapy`
