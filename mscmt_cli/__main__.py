from mscmt_cli.cli import main

main()
