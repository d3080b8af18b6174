// compose-check loads each Compose file given with compose-go, the loader Docker Compose v2
// itself uses, the way `docker compose config` does: schema, interpolation, merge keys and
// extends. It prints one line per file and exits 1 if any file is refused. Debian's
// docker-compose 1.29 (Compose v1) checks the same files in scripts/compose-check.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	failed := false
	for _, file := range os.Args[1:] {
		options, err := cli.NewProjectOptions([]string{file}, cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithName("campus-check"))
		if err == nil {
			var project interface{ ServiceNames() []string }
			project, err = options.LoadProject(context.Background())
			if err == nil {
				fmt.Printf("compose v2: %s: ok (%d services)\n", file, len(project.ServiceNames()))
				continue
			}
		}
		fmt.Printf("compose v2: %s: %v\n", file, err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}
