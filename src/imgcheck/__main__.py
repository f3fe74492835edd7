from imgcheck.cli import main

main()
