package main

import (
	"fmt"
	"os"
	"strings"
)

// Greeting builds a greeting in the given language.
func Greeting(lang, name string) string {
	switch strings.ToLower(lang) {
	case "fr":
		return fmt.Sprintf("Bonjour, %s ! Ça va ?", name)
	case "ja":
		return fmt.Sprintf("こんにちは、%sさん", name)
	case "de":
		return fmt.Sprintf("Grüß dich, %s", name)
	default:
		return fmt.Sprintf("Hello, %s", name)
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: greet LANG NAME")
		os.Exit(2)
	}


	fmt.Println(Greeting(os.Args[1], os.Args[2]))
}
