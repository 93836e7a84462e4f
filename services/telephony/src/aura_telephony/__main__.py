from aura_telephony.server import main

main()
