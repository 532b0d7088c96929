#include <iostream>

#include "cli/app.h"

int main(int argc, char** argv) {
  return chainctl::cli::RunCli(std::vector<std::string>(argv, argv + argc), std::cout, std::cerr);
}
