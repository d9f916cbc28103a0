namespace Beit.Tests.Docs;

/// <summary>
/// A throw-away console project that references the library projects as an application would (plus the CPU ONNX
/// Runtime package), built by <c>dotnet build</c>: README's snippets and <c>beit train</c>'s consumption code are
/// compiled with it.
/// </summary>
internal static class ScratchProject
{
    /// <summary>The repository root.</summary>
    public static string Repository => Path.GetFullPath(Path.Combine(Fixtures.Root, "..", "..", ".."));

    /// <summary>Writes <c>Directory.Packages.props</c> and <c>&lt;assemblyName&gt;.csproj</c> into <paramref name="project"/>.</summary>
    /// <param name="project">The project folder (its .cs files are compiled).</param>
    /// <param name="assemblyName">The project and assembly name.</param>
    /// <param name="training">Also reference Microsoft.ML.Beit.Training (and import its libtorch fix, as its package does).</param>
    public static void Write(string project, string assemblyName, bool training)
    {
        string repository = Repository;
        // Central package management as in the repository, so transitive pins (SkiaSharp) apply here too.
        File.WriteAllText(Path.Combine(project, "Directory.Packages.props"),
            $"""<Project><Import Project="{Path.Combine(repository, "Directory.Packages.props")}" /></Project>""");
        string trainingReference = training
            ? $"""<ProjectReference Include="{Path.Combine(repository, "src", "Microsoft.ML.Beit.Training", "Microsoft.ML.Beit.Training.csproj")}" />"""
            : "";
        string trainingImport = training
            ? $"""
              <!-- What a NuGet consumer of Microsoft.ML.Beit.Training gets through buildTransitive (the Debian 12 libtorch fix). -->
              <Import Project="{Path.Combine(repository, "src", "Microsoft.ML.Beit.Training", "build", "Microsoft.ML.Beit.Training.targets")}" />
            """
            : "";
        File.WriteAllText(Path.Combine(project, assemblyName + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net{Environment.Version.Major}.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <ManagePackageVersionsCentrally>true</ManagePackageVersionsCentrally>
                <SatelliteResourceLanguages>en</SatelliteResourceLanguages>
              </PropertyGroup>
              <ItemGroup>
                <ProjectReference Include="{Path.Combine(repository, "src", "Microsoft.ML.Beit", "Microsoft.ML.Beit.csproj")}" />
                {trainingReference}
                <PackageReference Include="Microsoft.ML.OnnxRuntime" />
              </ItemGroup>
            {trainingImport}
            </Project>
            """);
    }

    /// <summary>Builds <paramref name="project"/> in the tests' configuration; returns the built dll's path.</summary>
    public static string Build(string project, string assemblyName)
    {
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = baseDir.Name, configuration = baseDir.Parent!.Name;
        var build = Estimators.DotnetProcess.Run("build", [project, "-c", configuration, "-nologo", "-v", "q", "-nodeReuse:false"], project);
        Assert.True(build.ExitCode == 0, $"{assemblyName} does not build:\n{build.Stdout}{build.Stderr}");
        return Path.Combine(project, "bin", configuration, tfm, assemblyName + ".dll");
    }
}
