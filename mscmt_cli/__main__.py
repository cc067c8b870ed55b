from mscmt_cli.cli.main import main

main()
