from lstmlab.cli import main

main()
