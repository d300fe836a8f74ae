"""`python -m noisecraft` is the same as the `noisecraft` console script."""
from noisecraft.cli.main import main

if __name__ == "__main__":
    main()
