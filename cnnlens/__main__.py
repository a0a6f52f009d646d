from cnnlens.cli import main

main()
