"""`python -m stream.bench`: the same as `adafocus-stream bench`.

Kept free of heavy imports: multiprocessing's spawn re-imports the main module in
every pipeline process the bench starts.
"""

import argparse
import sys

from stream.commands import bench as main

parser = argparse.ArgumentParser(prog="python -m stream.bench", description=main.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
main.configure(parser)
if __name__ == "__main__":
    sys.exit(main.run(parser.parse_args()))
