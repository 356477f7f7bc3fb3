import sys

from deploy.sim.city import main

sys.exit(main())
