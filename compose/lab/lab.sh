#!/bin/sh
# The lab image's entry point: starts the brokers the run needs on the container's loopback
# with the same script as on a machine (the experiments stop and restart them through it),
# then runs campus-sim with the arguments given. The simulation needs no broker.
set -e
case " $* " in
  *" --real-brokers "*)
    case " $* " in
      *" cluster "*) "$CAMPUS_BROKERS_SCRIPT" up --cluster ;;
      *" bench "*|*" async-rabbitmq "*|*" streaming-kafka "*) "$CAMPUS_BROKERS_SCRIPT" up ;;
      *" sync-rest "*) ;;
      *) "$CAMPUS_BROKERS_SCRIPT" up ;;
    esac ;;
esac
exec campus-sim "$@"
