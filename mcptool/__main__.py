from mcptool.cli import main

main()
