from llmops.cli import main

main()
