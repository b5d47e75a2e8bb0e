from bench.cli.app import main

main()
