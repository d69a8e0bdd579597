from edge.agent.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m edge.agent"))
