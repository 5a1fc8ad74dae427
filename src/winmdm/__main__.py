from winmdm.cli.main import main

main()
